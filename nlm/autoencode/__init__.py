"""Autoencoders at work: the reconstruction task (with stacked phases), training, and encoding,
reconstructing and drawing filters."""

"""Image data for the vision and autoencoder commands: loaders, generated digits, shape checks."""

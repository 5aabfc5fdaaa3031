"""Image data: labelled image sets, the loaders behind every --data spec, generated digits, batching."""

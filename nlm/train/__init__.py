"""The one trainer that language models, image classifiers and autoencoders share, and its callbacks."""

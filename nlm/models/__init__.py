"""Models: the RNN language model, image classifiers and autoencoders, built from their configs."""

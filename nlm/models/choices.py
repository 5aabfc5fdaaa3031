"""The names of the model choices, declared once and free of torch.

The CLI lists and checks them without loading torch; each registry beside its torch code
(`CELL_MODULES`, `HEADS`, `POOL_LAYERS`, ...) is keyed by exactly these names, which a test checks.
"""

CELLS = ("rnn-tanh", "rnn-relu", "lstm", "gru")  # the recurrent cells of a language model
RNN_INITS = ("uniform", "pytorch")  # recurrent weights uniform in +-init_range, or +-1/sqrt(size) as AWD-LSTM
SOFTMAXES = ("full", "adaptive")  # a language model's output layer
ARCHITECTURES = ("cnn", "mlp")  # image classifiers
POOLS = ("max", "avg")  # a CNN's pooling after each conv layer
ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")  # of dense layers (MLP hidden layers, autoencoders)
AUTOENCODER_KINDS = ("undercomplete", "sparse", "denoising", "stacked")
DENOISING_KINDS = ("denoising", "stacked")  # the kinds whose inputs are corrupted in training
CORRUPTIONS = ("mask", "gaussian")  # how a denoising autoencoder's input is corrupted

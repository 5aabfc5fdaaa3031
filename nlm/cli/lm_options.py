"""The language model's option groups, declared once: the vocabulary to build, how the text is read, the model.

Each group reaches `nlm train` as one typed config (VocabConfig, LMDataConfig, RNNConfig), built by
the builders `nlm.train` uses too (nlm/api/options.py); see `OptionGroup` in nlm/cli/option_groups.py.
"""

from __future__ import annotations

from nlm.api.options import data_config, rnn_config, vocab_config
from nlm.cli.option_groups import OptionGroup, option_spec
from nlm.cli.options import DATA, MODEL, Cell, Level, Mode, RnnInit, Softmax

AWD = "AWD-LSTM regularisers (Merity et al. 2017)"

VOCAB_BUILD = OptionGroup(
    "vocab_config",
    vocab_config,
    {
        "level": option_spec(Level, "word", "Vocabulary level when building one.", DATA),
        "vocab_size": option_spec(
            int | None,
            None,
            "Keep the K most frequent symbols besides the 4 specials (required for bpe/unigram).",
            DATA,
            "--vocab-size",
            "--size",
        ),
        "min_count": option_spec(int, 1, "Minimum count of a kept word/char when building.", DATA),
        "lowercase": option_spec(bool, False, "Fold case when building the vocabulary.", DATA),
        "sample_lines": option_spec(
            int,
            100_000,
            "bpe/unigram: train sentencepiece on a random sample of this many lines "
            "(0: all); coverage still counts every line.",
            DATA,
        ),
        "character_coverage": option_spec(
            float,
            0.9995,
            "bpe/unigram: share of characters the alphabet must cover (1.0 for small "
            "alphabets); rarer ones become <unk>.",
            DATA,
        ),
    },
)

LM_DATA = OptionGroup(
    "data",
    data_config,
    {
        "mode": option_spec(
            Mode, "stream", "stream: carried state over the whole text; sentence: each line from a zero state.", DATA
        ),
        "batch_size": option_spec(int, 20, "Parallel rows (stream) or sentences (sentence) per batch.", DATA),
        "bptt": option_spec(int, 35, "Window length of truncated backpropagation through time.", DATA),
        "variable_bptt": option_spec(
            bool,
            False,
            "Draw each window's length around --bptt and scale that step's learning rate by "
            "length/bptt (AWD-LSTM); stream mode.",
            AWD,
        ),
    },
)

RNN_MODEL = OptionGroup(
    "model",
    rnn_config,
    {
        "cell": option_spec(Cell, "lstm", "Recurrent cell.", MODEL),
        "layers": option_spec(int, 2, "Recurrent layers.", MODEL),
        "emb": option_spec(int | None, None, "Embedding size [default: --hidden].", MODEL),
        "hidden": option_spec(int, 200, "Hidden state size (of every layer but the last, with --last-hidden).", MODEL),
        "dropout": option_spec(float, 0.2, "Dropout on embeddings, between layers and before the output.", MODEL),
        "tie": option_spec(
            bool | None,
            None,
            "Tie the input and output embeddings (needs --emb equal to the last layer's size) "
            "[default: tie where they are equal].",
            MODEL,
            "--tie/--no-tie",
        ),
        "init_range": option_spec(float, 0.1, "Uniform initialisation range.", MODEL),
        "forget_bias": option_spec(
            float | None,
            None,
            "LSTM: start every forget gate's bias at this (1: remember by default, "
            "Gers et al. 2000) [default: as the other weights].",
            MODEL,
        ),
        "softmax": option_spec(
            Softmax,
            "full",
            "Output layer: full (every logit), or adaptive (PyTorch's AdaptiveLogSoftmaxWithLoss: "
            "exact probabilities, several times faster on large vocabularies).",
            MODEL,
        ),
        "cutoffs": option_spec(
            str | None,
            None,
            "With --softmax adaptive: the ids where the tail clusters start, increasing and below "
            "the vocabulary size, e.g. 2000,10000 (ids run from the most frequent symbol).",
            MODEL,
        ),
        "dropout_input": option_spec(
            float | None, None, "Dropout on the embeddings [default: --dropout] (AWD-LSTM: 0.65).", AWD
        ),
        "dropout_hidden": option_spec(
            float | None, None, "Dropout between recurrent layers [default: --dropout] (AWD-LSTM: 0.3).", AWD
        ),
        "dropout_output": option_spec(
            float | None, None, "Dropout on the last layer's output [default: --dropout] (AWD-LSTM: 0.4).", AWD
        ),
        "locked_dropout": option_spec(
            bool, False, "One dropout mask per sequence, shared by every time step (variational dropout).", AWD
        ),
        "emb_dropout": option_spec(
            float, 0.0, "Drop whole word types from the embedding matrix, a new draw per batch (AWD-LSTM: 0.1).", AWD
        ),
        "weight_drop": option_spec(
            float, 0.0, "DropConnect on the hidden-to-hidden matrices, a new mask per step (AWD-LSTM: 0.5).", AWD
        ),
        "last_hidden": option_spec(
            int | None,
            None,
            "Size of the last recurrent layer [default: --hidden] (AWD-LSTM: --emb 400 "
            "--hidden 1150 --last-hidden 400).",
            AWD,
        ),
        "ar": option_spec(
            float, 0.0, "Activation regularisation: ALPHA x mean squared dropped last-layer output (AWD-LSTM: 2).", AWD
        ),
        "tar": option_spec(
            float,
            0.0,
            "Temporal AR: BETA x mean squared step-to-step change of the undropped last-layer output (AWD-LSTM: 1).",
            AWD,
        ),
        "rnn_init": option_spec(
            RnnInit,
            "uniform",
            "Recurrent weights uniform in +-init-range, or +-1/sqrt(layer size) as AWD-LSTM.",
            AWD,
        ),
    },
)

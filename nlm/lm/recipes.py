"""Published language-model configurations as `nlm train` presets (`--recipe NAME`): plain data.

Each recipe maps `nlm train` options (by parameter name, with the value the command line would
give) to a published configuration, with the figure it reached and where that is published.
Options a recipe leaves out keep nlm's defaults; every option typed on the command line wins.

Recipes written for a loss summed over a window's T steps (Zaremba et al.) are translated to nlm's
mean per-token loss: the same updates are --lr x T and --clip / T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The options every recipe sets, at their plain values, so a recipe does not move when a default of nlm does.
PLAIN: dict[str, Any] = {
    "cell": "lstm",
    "mode": "stream",
    "variable_bptt": False,
    "dropout_input": None,
    "dropout_hidden": None,
    "dropout_output": None,
    "locked_dropout": False,
    "emb_dropout": 0.0,
    "weight_drop": 0.0,
    "last_hidden": None,
    "ar": 0.0,
    "tar": 0.0,
    "softmax": "full",
    "init_range": 0.1,
    "rnn_init": "uniform",
    "momentum": 0.0,
    "weight_decay": 0.0,
    "milestones": None,
    "level": "word",
}


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str  # what it is, in a few words
    data: str  # the data it was published on
    files: tuple[str, str]  # its training and validation text, under nlm's benchmark data (../shared/data)
    figure: str  # the published result
    source: str  # where: paper and table, or repository and file
    options: dict[str, Any]  # `nlm train` parameter -> value; PLAIN fills the rest


def _recipe(name: str, summary: str, *, data: tuple[str, str, str], figure: str, source: str, **options: Any) -> Recipe:
    return Recipe(name, summary, data[0], data[1:], figure, source, {**PLAIN, **options})


ZAREMBA = "Zaremba, Sutskever & Vinyals 2014, Recurrent Neural Network Regularization (arXiv:1409.2329), Table 1"
AWD = "Merity, Keskar & Socher 2017, Regularizing and Optimizing LSTM Language Models (arXiv:1708.02182)"
AWD_README = "salesforce/awd-lstm-lm README (PyTorch 0.4 code)"
PTB = ("Penn Treebank, Mikolov's word-level version", "ptb/ptb.train.txt", "ptb/ptb.valid.txt")
# AWD-LSTM's model and optimisation, common to its word-level recipes (main.py's defaults).
AWD_WORD = dict(
    layers=3,
    emb=400,
    hidden=1150,
    last_hidden=400,
    tie=True,
    dropout=0.4,
    dropout_output=0.4,
    emb_dropout=0.1,
    weight_drop=0.5,
    locked_dropout=True,
    ar=2.0,
    tar=1.0,
    rnn_init="pytorch",
    variable_bptt=True,
    bptt=70,
    optimizer="ntasgd",
    lr=30.0,
    clip=0.25,
    weight_decay=1.2e-6,
    schedule="none",
    nonmono=5,
)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        _recipe(
            "example",
            "pytorch/examples word_language_model, main.py's defaults: untied 2 x 200 LSTM",
            data=PTB,
            figure="perplexity 117.61 with --epochs 6 (PTB; the split is not stated)",
            source="pytorch/examples word_language_model/README.md at commit bcea1f5 (2017; removed since)",
            layers=2,
            emb=200,
            hidden=200,
            tie=False,
            dropout=0.2,
            rnn_init="pytorch",
            bptt=35,
            batch_size=20,
            optimizer="sgd",
            lr=20.0,
            clip=0.25,
            schedule="plateau",
            lr_factor=0.25,
            epochs=40,
            seed=1111,
        ),
        _recipe(
            "ptb-25min",
            "nlm's best 25 CPU minutes on PTB: tied 2 x 300 LSTM, dropout 0.3, adaptive softmax, "
            "SGD lr 20 falling linearly to 0 over the budget (--schedule budget), no epoch limit",
            data=PTB,
            figure="valid 101.24 perplexity in 25 min on one core against the example's 119.27, with its earlier "
            "schedule (8 epochs, lr halved after the 3rd); on the budget schedule: nlm README, Figures",
            source="nlm README, 'PTB word level: equal time against the PyTorch example' (measured by nlm)",
            layers=2,
            emb=300,
            hidden=300,
            tie=True,
            dropout=0.3,
            init_range=0.1,
            bptt=20,
            batch_size=20,
            softmax="adaptive",
            cutoffs="2000,6000",
            optimizer="sgd",
            lr=20.0,
            clip=0.25,
            schedule="budget",
            max_time=1500.0,
            seed=1,
        ),
        _recipe(
            "zaremba-small",
            "Zaremba et al. small: untied 2 x 200 LSTM, no dropout; lr 1, clip 5 at bptt 20",
            data=PTB,
            figure="valid 120.7, test 114.5 perplexity (nlm measured valid 116.85, README)",
            source=ZAREMBA,
            layers=2,
            emb=200,
            hidden=200,
            tie=False,
            dropout=0.0,
            init_range=0.1,
            bptt=20,
            batch_size=20,
            optimizer="sgd",
            lr=1.0 * 20,
            clip=5.0 / 20,
            schedule="decay",
            lr_factor=0.5,
            decay_start=4,
            epochs=13,
            seed=1,
        ),
        _recipe(
            "zaremba-medium",
            "Zaremba et al. medium: untied 2 x 650 LSTM, dropout 0.5; lr 1, clip 5 at bptt 35",
            data=PTB,
            figure="valid 86.2, test 82.7 perplexity",
            source=ZAREMBA,
            layers=2,
            emb=650,
            hidden=650,
            tie=False,
            dropout=0.5,
            init_range=0.05,
            bptt=35,
            batch_size=20,
            optimizer="sgd",
            lr=1.0 * 35,
            clip=5.0 / 35,
            schedule="decay",
            lr_factor=1 / 1.2,
            decay_start=6,
            epochs=39,
            seed=1,
        ),
        _recipe(
            "zaremba-large",
            "Zaremba et al. large: untied 2 x 1500 LSTM, dropout 0.65; lr 1, clip 10 at bptt 35",
            data=PTB,
            figure="valid 82.2, test 78.4 perplexity",
            source=ZAREMBA,
            layers=2,
            emb=1500,
            hidden=1500,
            tie=False,
            dropout=0.65,
            init_range=0.04,
            bptt=35,
            batch_size=20,
            optimizer="sgd",
            lr=1.0 * 35,
            clip=10.0 / 35,
            schedule="decay",
            lr_factor=1 / 1.15,
            decay_start=14,
            epochs=55,
            seed=1,
        ),
        _recipe(
            "awd-ptb",
            "AWD-LSTM on PTB: 3-layer weight-dropped LSTM 400-1150-1150-400, tied, NT-ASGD; then --finetune",
            data=PTB,
            figure="valid 61.2, test 58.8 perplexity; 58.8 / 56.5 after fine-tuning (paper: 60.0 / 57.3)",
            source=f"{AWD_README}, 'Word level Penn Treebank (PTB) with LSTM'; paper: {AWD}, Table 1",
            **AWD_WORD,
            dropout_input=0.4,
            dropout_hidden=0.25,
            batch_size=20,
            epochs=500,
            seed=141,
        ),
        _recipe(
            "awd-wt2",
            "AWD-LSTM on WikiText-2: as awd-ptb with input dropout 0.65, batch 80; then --finetune",
            data=("WikiText-2 (tokenized, v1)", "wikitext-2/train.txt", "wikitext-2/valid.txt"),
            figure="valid 68.7, test 65.6 perplexity; 67.4 / 64.7 after fine-tuning (paper: 68.6 / 65.8)",
            source=f"{AWD_README}, 'Word level WikiText-2 (WT2) with LSTM'; paper: {AWD}, Table 2",
            **AWD_WORD,
            dropout_input=0.65,
            dropout_hidden=0.2,
            batch_size=80,
            epochs=750,
            seed=1882,
        ),
        _recipe(
            "awd-ptb-char",
            "AWD-LSTM on character-level PTB: 3-layer 200-1000-1000-200, tied, Adam, lr / 10 after epochs 300, 400",
            data=(
                "Penn Treebank characters, space-separated (read as words, as AWD-LSTM does), _ between words",
                "ptb/ptb.char.train.txt",
                "ptb/ptb.char.valid.txt",
            ),
            figure="test 1.175 bits per character",
            source="Merity, Keskar & Socher 2018, An Analysis of Neural Language Modeling at Multiple Scales "
            "(arXiv:1803.08240), "
            f"3-layer AWD-LSTM; command: {AWD_README}, 'Character level Penn Treebank (PTB) with LSTM'",
            layers=3,
            emb=200,
            hidden=1000,
            last_hidden=200,
            tie=True,
            dropout=0.1,
            dropout_input=0.1,
            dropout_hidden=0.25,
            dropout_output=0.1,
            weight_drop=0.5,
            locked_dropout=True,
            rnn_init="pytorch",
            variable_bptt=True,
            bptt=150,
            batch_size=128,
            optimizer="adam",
            lr=2e-3,
            clip=0.25,
            weight_decay=1.2e-6,
            schedule="steps",
            milestones="300,400",
            lr_factor=0.1,
            epochs=500,
            seed=1111,
        ),
        _recipe(
            "shakespeare-char",
            "nlm's recommended character-level model: tied 2 x 256 LSTM, Adam at 4e-3 falling linearly to 0 over "
            "15 minutes (--schedule budget)",
            data=("Tiny Shakespeare", "tinyshakespeare/train.txt", "tinyshakespeare/valid.txt"),
            figure="valid 2.0475 bits per character after 8.8 epochs (20 min, one CPU thread; still improving), "
            "with its earlier constant rate of 2e-3; on the budget schedule: nlm README, Figures",
            source="nlm README, 'Tiny Shakespeare, character level' (measured by nlm)",
            level="char",
            layers=2,
            emb=256,
            hidden=256,
            tie=True,
            dropout=0.2,
            bptt=100,
            batch_size=32,
            optimizer="adam",
            lr=4e-3,
            clip=1.0,
            schedule="budget",
            max_time=900.0,
            seed=1,
        ),
    )
}


def last_layer_follows_embedding(options: dict[str, Any], given: set[str]) -> None:
    """A tied recipe given --emb or --hidden (not --last-hidden): its last layer takes the embedding's size, as in
    AWD-LSTM (`awd-ptb --emb 16 --hidden 32`: LSTM 32-32-16 tied to its embedding, not 32-32-400 that cannot tie)."""
    if not options.get("tie") or "tie" in given or "last_hidden" in given or not given & {"emb", "hidden"}:
        return
    emb = options.get("emb") or options["hidden"]
    options["last_hidden"] = None if emb == options["hidden"] else emb

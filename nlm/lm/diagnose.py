"""`nlm diagnose` as library calls: the models to look at (checkpoints, or fresh ones trained for a few steps),
their gradient flow by lag, their gradient norms by layer, and the gradient-flow chart.

Fresh models share one word vocabulary built from the text and are each initialised from
the same seed, so `--cell rnn-tanh --cell lstm` compares the cells on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nlm.config import Config, check
from nlm.errors import ConfigError
from nlm.io.figures import Series, line_chart
from nlm.io.text import read_lines
from nlm.lm.gradients import LayerGradient, lag_gradient_norms, layer_gradient_norms, sample_windows
from nlm.lm.loading import load_language_model
from nlm.models.choices import CELLS
from nlm.models.recurrent import set_forget_bias
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.runtime import check_model_fits, seed_everything
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import EncodedCorpus, encode_corpus
from nlm.text.vocab import Vocabulary


@dataclass(frozen=True)
class FreshModels(Config):
    cells: tuple[str, ...] = ()  # one fresh model per cell, in this order
    hidden: int = 64  # recurrent state size
    layers: int = 1  # recurrent layers
    emb: int | None = None  # embedding size; None: hidden
    init_range: float = 0.1  # weights start uniform in [-init_range, init_range], as `nlm train` does
    forget_bias: float | None = None  # an LSTM's forget-gate bias at the start; None: leave the uniform draw
    steps: int = 0  # optimizer steps on the text before measuring (0: untrained)
    lr: float = 1e-3  # Adam's learning rate for those steps
    seed: int = 1  # initialisation and training order

    def validate(self) -> None:
        for cell in self.cells:
            check(cell in CELLS, f"--cell must be one of {', '.join(CELLS)}, not {cell!r}")
        check(self.steps >= 0, f"--steps must be >= 0, not {self.steps}")
        check(self.lr > 0, f"--lr must be positive, not {self.lr}")
        check(self.forget_bias is None or "lstm" in self.cells, "--forget-bias applies to --cell lstm only")


@dataclass(frozen=True, eq=False)
class Subject:
    label: str  # legend and column name: the cell, or the checkpoint's run folder
    model: RNNLM
    vocab: Vocabulary
    corpus: EncodedCorpus  # the text, encoded with `vocab`


def train_steps(model: RNNLM, vocab: Vocabulary, corpus: EncodedCorpus, *, steps: int, lr: float, seed: int) -> None:
    """`steps` Adam steps of the shared trainer on `corpus` (stream mode, 20 rows, windows of 35, clip 0.25);
    no files are written."""
    from nlm.lm.config import LMDataConfig
    from nlm.lm.task import LMTask
    from nlm.train.config import TrainConfig
    from nlm.train.trainer import Trainer

    device = next(model.parameters()).device
    task = LMTask(model=model, vocab=vocab, train=corpus, valid=None, data=LMDataConfig(), device=device, seed=seed)
    config = TrainConfig(
        optimizer="adam", lr=lr, epochs=1_000_000, max_steps=steps, schedule="none", device=device.type, seed=seed
    )
    Trainer(task, config, device=device, callbacks=[]).fit()


def fresh_subjects(text: str | Path, spec: FreshModels) -> list[Subject]:
    """One model per cell of `spec`, on a word vocabulary of `text`, trained for `spec.steps` if asked."""
    if not spec.cells:
        return []
    vocab, _ = build_vocab(read_lines(text), config=VocabConfig(level="word"))
    corpus = encode_corpus(text, vocab)
    subjects = []
    for cell in spec.cells:
        seed_everything(spec.seed)
        config = RNNConfig(
            vocab_size=len(vocab),
            cell=cell,
            layers=spec.layers,
            emb=spec.emb or spec.hidden,
            hidden=spec.hidden,
            dropout=0.0,
            init_range=spec.init_range,
        )
        model = check_model_fits(partial(RNNLM, config))
        if spec.forget_bias is not None and cell == "lstm":
            set_forget_bias(model.recurrent, spec.forget_bias)
        if spec.steps:
            train_steps(model, vocab, corpus, steps=spec.steps, lr=spec.lr, seed=spec.seed)
        subjects.append(Subject(label=cell, model=model, vocab=vocab, corpus=corpus))
    return subjects


def checkpoint_subject(path: str, text: str | Path) -> Subject:
    """A trained model (checkpoint file or run folder) and the text in its vocabulary, on the CPU."""
    lm = load_language_model(path, device="cpu")
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    return Subject(label=folder.name or str(path), model=lm.model, vocab=lm.vocab, corpus=encode_corpus(text, lm.vocab))


def diagnose_subjects(text: str | Path, *, checkpoints: list[str], fresh: FreshModels) -> list[Subject]:
    """Checkpoints first, then fresh models; labels made unique with a number."""
    if not checkpoints and not fresh.cells:
        raise ConfigError(
            "give a model to look at: -m CHECKPOINT, or --cell rnn-tanh|rnn-relu|lstm|gru for a fresh one"
        )
    subjects = [checkpoint_subject(path, text) for path in checkpoints] + fresh_subjects(text, fresh)
    seen: dict[str, int] = {}
    for i, subject in enumerate(subjects):
        seen[subject.label] = seen.get(subject.label, 0) + 1
        if seen[subject.label] > 1:
            subjects[i] = Subject(
                f"{subject.label}-{seen[subject.label]}", subject.model, subject.vocab, subject.corpus
            )
    return subjects


def gradient_flow(subjects: list[Subject], *, lags: int, windows: int = 32, seed: int = 1) -> dict[str, list[float]]:
    """Each subject's mean ||dL_t/ds_{t-k}|| for k = 0 .. lags, over the same window positions of the text."""
    check(lags >= 0, f"--lags must be >= 0, not {lags}")
    check(windows >= 1, f"--windows must be at least 1, not {windows}")
    return {
        s.label: lag_gradient_norms(s.model, sample_windows(s.corpus.ids, count=windows, length=lags + 2, seed=seed))
        for s in subjects
    }


def clipping_report(
    subjects: list[Subject], *, clip: float, bptt: int = 35, windows: int = 32, seed: int = 1
) -> dict[str, list[LayerGradient]]:
    """Each subject's gradient norm per layer on `windows` windows of `bptt` steps, before and after clipping."""
    check(clip >= 0, f"--clip must be >= 0 (0 turns clipping off), not {clip}")
    check(bptt >= 1 and windows >= 1, "--bptt and --windows must be at least 1")
    return {
        s.label: layer_gradient_norms(
            s.model, sample_windows(s.corpus.ids, count=windows, length=bptt + 1, seed=seed), clip=clip
        )
        for s in subjects
    }


def plot_gradient_flow(flows: dict[str, list[float]], path: str | Path) -> tuple[int, int]:
    """Norm against lag on a log scale, one line per model; returns the PNG's (width, height)."""
    series = [
        Series(label, range(len(norms)), [n if n > 0 else float("nan") for n in norms])
        for label, norms in flows.items()
    ]
    return line_chart(
        series,
        path,
        xlabel="lag k (steps back from the loss)",
        ylabel=r"mean $\|\partial L_t / \partial s_{t-k}\|$",
        title="How far back the gradient reaches",
        log_y=True,
    )

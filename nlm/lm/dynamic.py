"""Dynamic evaluation (Krause, Kahembwe, Murray & Renals 2018, arXiv:1709.07432): a model that keeps learning
from the text it scores.

The text is read in segments of N tokens.  Each segment is scored first, with the weights as they stand,
and only then learnt from: one gradient step on its mean loss, so a token's score never comes from a
gradient that saw it, and the first segment is scored by the trained model itself.  theta_0 are the
trained weights:

    rms  (Krause et al.)   theta <- theta - lr * g / (MS + eps) + decay * r * (theta_0 - theta)
    sgd                    theta <- theta - lr * g              + decay * (theta_0 - theta)

MS is the root mean square of each weight's gradient over windows of the training text (N tokens in
STATS_ROWS rows, read in order, the state carried, at most STATS_TOKENS tokens), and r = MS / mean(MS)
(the mean of the parameter tensors' means), clipped so that decay * r <= 1: the weights whose gradients
are large in training move, and are pulled back, the most.  The model stays in evaluation mode (no
dropout) and nothing random is drawn, so the result is deterministic.

Nothing is written into the run folder and the checkpoint file is only read: the model is restored to
theta_0 after use (`restore`), and the statistics are kept in the cache folder (`$NLM_CACHE_DIR`, else
~/.cache/nlm, under dyn-stats/), keyed by the checkpoint's digest, the training text's sha256 and the
settings, so they are computed once per model and text.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import torch

from nlm.errors import DataError, TrainingDivergedError
from nlm.io.atomic import write_bytes_atomic
from nlm.io.text import file_sha256
from nlm.lm.adapt_config import DYN_EPSILON
from nlm.lm.loading import LoadedLM
from nlm.models.rnn import RNNLM, State, detach_state, map_state
from nlm.text.batches import bptt_windows, stream_rows
from nlm.text.corpus import default_cache_dir, encode_corpus
from nlm.text.symbols import PAD

STATS_ROWS = 100  # rows of the training text read at once for the statistics (Krause et al.'s batch)
STATS_TOKENS = 1_000_000  # the statistics read at most this many training tokens (all of PTB's 930k)
STATS_VERSION = 1


class DynamicEvaluator:
    """The update rule over a model's weights, with the trained weights kept to pull back to and restore."""

    def __init__(
        self, model: RNNLM, *, rule: str, lr: float, decay: float, stats: dict[str, torch.Tensor] | None = None
    ) -> None:
        self.model = model
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.trained = [p.detach().clone() for p in self.params]
        self.rule, self.lr, self.decay = rule, lr, decay
        self.uniform = math.log(model.config.vocab_size)  # a uniform guess's loss
        self.limit = max(3 * self.uniform, self.uniform + 5)  # a loss above this is divergence, as training's guard
        if rule == "rms":  # per weight: the pull decay * r, clipped at 1, and the step size lr / (MS + eps)
            ms = [stats[name].to(p.device, p.dtype) for name, p in named]
            mean = torch.stack([m.mean() for m in ms]).mean()
            self.pull = [(decay * m / mean).clamp(max=1.0) for m in ms]
            self.step = [lr / (m + DYN_EPSILON) for m in ms]

    def learn(self, inputs: torch.Tensor, targets: torch.Tensor, state: State | None) -> None:
        """One step on the mean loss of a scored segment (`inputs` -> `targets` from `state`, <pad> targets not
        counted), every weight pulled towards its trained value.  The segment is run again with gradients: the
        scores come from the inference-mode pass, whose kernels differ from the autograd ones in the last bit."""
        counted = targets != PAD
        if not bool(counted.any()):
            return
        with torch.inference_mode(False), torch.enable_grad():
            state = None if state is None else map_state(state, torch.clone)
            features, _ = self.model(inputs.clone(), state)
            loss = self.model.nll(features, targets.clone())[counted.clone()].mean()
            value = float(loss.detach())
            if not value <= self.limit:  # NaN or infinite included
                raise TrainingDivergedError(
                    f"dynamic evaluation diverged: a segment's loss became {value:.4g} nats per token, far "
                    f"above a uniform guess's {self.uniform:.3g} (steps too large for this model); lower --dyn-lr"
                )
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        with torch.no_grad():  # as multi-tensor operations: a few kernels for all the weights
            moved = [(i, g) for i, g in enumerate(grads) if g is not None]  # not: a tail no target reached
            params, grads = [self.params[i] for i, _ in moved], [g for _, g in moved]
            if self.rule == "rms":
                torch._foreach_lerp_(self.params, self.trained, self.pull)  # theta += pull * (theta_0 - theta)
                torch._foreach_addcmul_(params, grads, [self.step[i] for i, _ in moved], value=-1.0)
                return
            if self.decay:
                torch._foreach_lerp_(self.params, self.trained, self.decay)
            torch._foreach_add_(params, grads, alpha=-self.lr)

    def restore(self) -> None:
        """The trained weights again, bit for bit."""
        with torch.no_grad():
            for p, p0 in zip(self.params, self.trained):
                p.copy_(p0)


def gradient_statistics(
    lm: LoadedLM, train: str | Path, *, segment: int, cache_dir: Path | None = None
) -> dict[str, torch.Tensor]:
    """The RMS of each weight's gradient over the training text `train`, from the cache folder when they
    were computed before for this checkpoint, text and segment length."""
    folder = (cache_dir or default_cache_dir()) / "dyn-stats"
    key = f"v{STATS_VERSION}|{lm.digest}|{file_sha256(train)}|{segment}|{STATS_ROWS}|{STATS_TOKENS}"
    path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location=lm.device, weights_only=True)
        except Exception:  # a damaged cache entry is computed again, never trusted
            pass
    stats = compute_statistics(lm, train, segment=segment, cache_dir=cache_dir)
    buffer = io.BytesIO()
    torch.save({name: t.cpu() for name, t in stats.items()}, buffer)
    write_bytes_atomic(path, buffer.getbuffer())
    return stats


def compute_statistics(
    lm: LoadedLM, train: str | Path, *, segment: int, cache_dir: Path | None = None
) -> dict[str, torch.Tensor]:
    """sqrt(mean over windows of g^2) for every weight: the gradient of each window's mean loss, the windows
    of `segment` tokens read in order over STATS_ROWS rows of the text with the state carried."""
    model = lm.model
    corpus = encode_corpus(train, lm.vocab, cache_dir=cache_dir)
    rows = stream_rows(corpus.ids, max(1, min(STATS_ROWS, corpus.tokens // (segment + 1))))
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    squares = [torch.zeros_like(p) for _, p in named]
    windows, state = 0, None
    with torch.inference_mode(False), torch.enable_grad():
        for window in bptt_windows(rows, segment):
            features, state = model(window.inputs.to(lm.device), state)
            loss = model.nll(features, window.targets.to(lm.device)).mean()
            grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
            for square, g in zip(squares, grads):
                if g is not None:
                    square.addcmul_(g, g)
            state, windows = detach_state(state), windows + 1
            if windows * window.targets.numel() >= STATS_TOKENS:
                break
    if not windows:
        raise DataError(f"{train} is too short for gradient statistics")
    return {name: (square / windows).sqrt() for (name, _), square in zip(named, squares)}

"""The language-model task: truncated BPTT with a carried hidden state, or independent sentences.

Stream mode feeds the B rows window by window, carrying each row's hidden state into
its next window and detaching it there, so gradients flow back at most `bptt` steps while
the state still sees the whole history.  The state starts from zero at every epoch.
Sentence mode starts every line from a zero state, with `<bos>` as its first input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from nlm.lm.config import LMDataConfig
from nlm.models.rnn import RNNLM, State, detach_state
from nlm.text.batches import Window, bptt_windows, count_windows, lines_window, sentence_batches, stream_rows
from nlm.text.corpus import EncodedCorpus
from nlm.text.symbols import BOS, PAD
from nlm.text.vocab import Vocabulary


class LMTask:
    kind = "lm"
    unit = "tok"

    def __init__(self, *, model: RNNLM, vocab: Vocabulary, train: EncodedCorpus, valid: EncodedCorpus | None,
                 data: LMDataConfig, device: torch.device, seed: int) -> None:
        self.model, self.vocab, self.train, self.valid = model, vocab, train, valid
        self.data, self.device, self.seed = data, device, seed
        self.state: State | None = None  # the carried hidden state (stream mode)
        self.uniform_loss = math.log(len(vocab))  # a uniform guess over the vocabulary, for the divergence guard
        if data.mode == "stream":
            self.rows = stream_rows(train.ids, data.batch_size)

    # -- training ---------------------------------------------------------------------------
    def batches_per_epoch(self) -> int:
        if self.data.mode == "stream":
            return count_windows(self.rows, self.data.bptt)
        return -(-self.train.lines // self.data.batch_size)

    def train_batches(self, epoch: int, start: int) -> Iterator[Window]:
        if start == 0:
            self.state = None
        if self.data.mode == "stream":
            yield from bptt_windows(self.rows, self.data.bptt, start=start)
            return
        batches = sentence_batches(self.train, self.data.batch_size, seed=self.seed * 1000 + epoch)
        for indices in batches[start:]:
            yield lines_window(self.train, indices, start_id=BOS)

    def training_step(self, window: Window) -> tuple[torch.Tensor, int]:
        inputs = window.inputs.to(self.device, non_blocking=True)
        targets = window.targets.to(self.device, non_blocking=True)
        state = self.state if self.data.mode == "stream" else None
        features, state = self.model(inputs, state)
        if self.data.mode == "stream":
            self.state = detach_state(state)
        nll = self.model.nll(features, targets)
        if self.data.mode == "stream":  # no padding in a stream
            return nll.mean(), window.targets.numel()
        count = int((window.targets != PAD).sum())
        return nll.masked_fill(targets == PAD, 0.0).sum() / count, count

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float] | None:
        if self.valid is None:
            return None
        total, count = evaluate_corpus(self.model, self.valid, self.data, self.device)
        return self.metrics(total / count, tokens=count)

    def metrics(self, loss: float, *, tokens: int | None = None) -> dict[str, float]:
        metrics = {"loss": loss, "ppl": math.exp(min(loss, 700.0))}
        if self.vocab.level == "char":
            metrics["bpc"] = loss / math.log(2)
        if tokens is not None:
            metrics["tokens"] = tokens
        return metrics

    def describe(self, metrics: dict[str, float]) -> str:
        loss = metrics["loss"]
        text = f"loss {loss:.4f} ppl {math.exp(min(loss, 700.0)):.2f}"
        return text + (f" bpc {loss / math.log(2):.4f}" if self.vocab.level == "char" else "")

    # -- state for checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        if self.state is None:
            return {"state": None}
        return {"state": list(self.state) if isinstance(self.state, tuple) else [self.state]}

    def load_state_dict(self, saved: dict) -> None:
        tensors = saved.get("state")
        if tensors is None:
            self.state = None
        else:
            tensors = [t.to(self.device) for t in tensors]
            self.state = tuple(tensors) if len(tensors) == 2 else tensors[0]

    def checkpoint_extras(self) -> dict:
        return {"config": {"model": self.model.config.to_dict(), "data": self.data.to_dict()}, "vocab": self.vocab.to_state()}


def evaluate_corpus(model: RNNLM, corpus: EncodedCorpus, data: LMDataConfig, device: torch.device) -> tuple[float, int]:
    """Summed cross-entropy (nats) and token count of `corpus`, with the training protocol."""
    total, count = 0.0, 0
    if data.mode == "stream":
        rows = stream_rows(corpus.ids, min(data.eval_batch_size, max(1, len(corpus.ids) // 2)))
        state = None
        for window in bptt_windows(rows, data.bptt):
            features, state = model(window.inputs.to(device), state)
            total += float(model.nll(features, window.targets.to(device)).sum())
            count += window.targets.numel()
        return total, count
    for indices in sentence_batches(corpus, data.eval_batch_size, seed=None):
        window = lines_window(corpus, indices, start_id=BOS)
        features, _ = model(window.inputs.to(device))
        targets = window.targets.to(device)
        total += float(model.nll(features, targets).masked_fill(targets == PAD, 0.0).sum())
        count += int((window.targets != PAD).sum())
    return total, count

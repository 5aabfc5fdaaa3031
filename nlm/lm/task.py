"""The language-model task: truncated BPTT with a carried hidden state, or independent sentences.

Stream mode feeds the B rows window by window, carrying each row's hidden state into
its next window and detaching it there, so gradients flow back at most `bptt` steps while
the state still sees the whole history.  The state starts from zero at every epoch.
With `variable_bptt` the window lengths vary around `bptt` (AWD-LSTM), drawn from (seed,
epoch) so a resumed run reads the same windows, and `lr_scale` gives the trainer each
step's learning-rate multiplier, length / bptt.
Sentence mode starts every line from a zero state, with `<bos>` as its first input.

Under torchrun each process takes its `Shard` of every batch: its block of the B rows (stream;
the state it carries is its rows', gathered after every step so that rank 0's checkpoint holds
all B), or its block of each batch's lines (sentence), its loss weighted by its share of the
batch's tokens so that the averaged gradient is the one a single process would take.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nlm.lm.config import LMDataConfig
from nlm.models.recurrent import LayerState
from nlm.models.rnn import RNNLM, State, map_state
from nlm.text.batches import (
    Window,
    bptt_windows,
    count_windows,
    evaluation_rows,
    lines_window,
    sentence_batches,
    stream_rows,
    variable_bptt_lengths,
    windows_of_lengths,
)
from nlm.text.corpus import EncodedCorpus
from nlm.text.symbols import BOS, PAD
from nlm.text.vocab import Vocabulary
from nlm.train.shard import SINGLE, Shard
from nlm.units import bits, perplexity


@dataclass(frozen=True)
class LinesShare:
    """One process's lines of a sentence batch (several processes)."""

    window: Window  # this process's lines (one line, weighted 0, when it has none of them)
    total: int  # target tokens of the whole batch, every process's lines
    empty: bool  # whether this process has none of the batch's lines


class LMTask:
    kind = "lm"
    unit = "tok"

    def __init__(
        self,
        *,
        model: RNNLM,
        vocab: Vocabulary,
        train: EncodedCorpus,
        valid: EncodedCorpus | None,
        data: LMDataConfig,
        device: torch.device,
        seed: int,
        shard: Shard = SINGLE,
    ) -> None:
        self.model, self.vocab, self.train, self.valid = model, vocab, train, valid
        self.data, self.device, self.seed, self.shard = data, device, seed, shard
        self.state: State | None = None  # the carried hidden state (stream mode): this process's rows
        self.all_rows_state: State | None = None  # ... and every process's rows, gathered (several processes)
        self.partial_gradients = (
            model.config.softmax == "adaptive"
        )  # a tail cluster gets no gradient from a batch without its words
        self.uniform_loss = math.log(len(vocab))  # a uniform guess over the vocabulary, for the divergence guard
        self.epoch = 0  # the epoch train_batches last started
        self._lengths: tuple[int, list[int]] | None = None  # (epoch, its window lengths) with variable BPTT
        shard.check_batch(data.batch_size)
        if data.mode == "stream":
            self.rows = stream_rows(train.ids, data.batch_size)[shard.block(data.batch_size)]

    # -- training ---------------------------------------------------------------------------
    def batches_per_epoch(self) -> int:
        if self.data.variable_bptt:
            return len(self.window_lengths(self.epoch))
        if self.data.mode == "stream":
            return count_windows(self.rows, self.data.bptt)
        return -(-self.train.lines // self.data.batch_size)

    def window_lengths(self, epoch: int) -> list[int]:
        """The variable-BPTT window lengths of `epoch`, the same in every run with this seed."""
        if self._lengths is None or self._lengths[0] != epoch:
            steps = self.rows.shape[1] - 1
            self._lengths = epoch, variable_bptt_lengths(steps, self.data.bptt, seed=self.seed, epoch=epoch)
        return self._lengths[1]

    def lr_scale(self, window: Window) -> float:
        """The step's learning-rate multiplier: window length / bptt with variable BPTT (AWD-LSTM), else 1."""
        return window.inputs.size(1) / self.data.bptt if self.data.variable_bptt else 1.0

    def train_batches(self, epoch: int, start: int) -> Iterator[Window]:
        self.epoch = epoch
        if start == 0:
            self.state = self.all_rows_state = None
        if self.data.variable_bptt:
            yield from windows_of_lengths(self.rows, self.window_lengths(epoch), start=start)
            return
        if self.data.mode == "stream":
            yield from bptt_windows(self.rows, self.data.bptt, start=start)
            return
        batches = sentence_batches(self.train, self.data.batch_size, seed=self.seed * 1000 + epoch)
        for indices in batches[start:]:
            yield (
                lines_window(self.train, indices, start_id=BOS) if self.shard.world == 1 else self._lines_share(indices)
            )

    def _lines_share(self, indices: np.ndarray) -> LinesShare:
        mine, count = self.shard.part(indices)
        total = sum(len(self.train.line(int(i))) for i in indices)  # each line's words and its <eos>
        return LinesShare(lines_window(self.train, mine, start_id=BOS), total, empty=count == 0)

    def training_step(self, window: Window | LinesShare) -> tuple[torch.Tensor, int]:
        share, window = (window, window.window) if isinstance(window, LinesShare) else (None, window)
        inputs = window.inputs.to(self.device, non_blocking=True)
        targets = window.targets.to(self.device, non_blocking=True)
        state = self.state if self.data.mode == "stream" else None
        features, state = self.model(inputs, state)
        if self.data.mode == "stream":
            self.state = map_state(state, lambda t: t.detach().float())  # carried in float32 at any precision
            if self.shard.world > 1:
                self.all_rows_state = map_state(self.state, lambda t: self.shard.gather(t, self.data.batch_size, dim=1))
        nll = self.model.nll(features, targets)
        if self.data.mode == "stream":  # no padding in a stream
            loss, count = nll.mean(), window.targets.numel()
        else:
            count = int((window.targets != PAD).sum())
            loss = nll.masked_fill(targets == PAD, 0.0).sum() / count
        penalty = self.model.activation_penalty(features)  # AR and TAR, None when off
        return self._share_of((loss if penalty is None else loss + penalty), count, share)

    def _share_of(self, loss: torch.Tensor, count: int, share: LinesShare | None) -> tuple[torch.Tensor, int]:
        """This process's share of the batch's loss, and the whole batch's count (the loss and count alone)."""
        if self.shard.world == 1:
            return loss, count
        if share is not None:
            return self.shard.weight(loss, 0 if share.empty else count, share.total), share.total
        rows = self.rows.shape[0]
        return self.shard.weight(loss, rows, self.data.batch_size), count // rows * self.data.batch_size

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float] | None:
        if self.valid is None:
            return None
        total, count = evaluate_corpus(self.model, self.valid, self.data, self.device, shard=self.shard)
        return self.metrics(total / count, tokens=count)

    def metrics(self, loss: float, *, tokens: int | None = None) -> dict[str, float]:
        metrics = {"loss": loss, "ppl": perplexity(loss)}
        if self.vocab.level == "char":
            metrics["bpc"] = bits(loss)
        if tokens is not None:
            metrics["tokens"] = tokens
        return metrics

    def describe(self, metrics: dict[str, float]) -> str:
        loss = metrics["loss"]
        text = f"loss {loss:.4f} ppl {perplexity(loss):.2f}"
        return text + (f" bpc {bits(loss):.4f}" if self.vocab.level == "char" else "")

    # -- state for checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        state = self.state if self.shard.world == 1 else self.all_rows_state  # every row's: the checkpoint holds all B
        if isinstance(state, list):  # a per-layer stack: [h] or [h, c] for each layer
            return {"state": None, "layer_states": [_tensors(layer) for layer in state]}
        return {"state": None if state is None else _tensors(state)}

    def load_state_dict(self, saved: dict) -> None:
        if saved.get("layer_states") is not None:
            self.state = [_layer_state(tensors) for tensors in saved["layer_states"]]
        else:
            self.state = None if saved.get("state") is None else _layer_state(saved["state"])
        if self.state is not None:
            self.state = map_state(self.state, lambda t: t.to(self.device, torch.float32))
        if self.state is not None and self.shard.world > 1:  # the checkpoint holds every row: keep this process's
            self.all_rows_state = self.state
            self.state = map_state(self.state, lambda t: t[:, self.shard.block(self.data.batch_size)])

    def checkpoint_extras(self) -> dict:
        return {
            "config": {"model": self.model.config.to_dict(), "data": self.data.to_dict()},
            "vocab": self.vocab.to_state(),
        }


def _tensors(state: LayerState) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def _layer_state(tensors: list[torch.Tensor]) -> LayerState:
    return (tensors[0], tensors[1]) if len(tensors) == 2 else tensors[0]


def evaluate_corpus(
    model: RNNLM,
    corpus: EncodedCorpus,
    data: LMDataConfig,
    device: torch.device,
    *,
    shard: Shard = SINGLE,
    adapter=None,
) -> tuple[float, int]:
    """Summed cross-entropy (nats) and token count of `corpus`, with the training protocol; several processes
    each take their block of the rows (stream) or every world-th batch (sentence), and sum.  An `adapter`
    (stream mode: nlm/lm/adapt.py) turns each window's scores into adapted ones, in order."""
    total, count = 0.0, 0
    if data.mode == "stream":
        rows = stream_rows(corpus.ids, evaluation_rows(len(corpus.ids), data.eval_batch_size))
        rows, state = rows[shard.block(len(rows))], None
        if adapter is not None:
            adapter.start()
        for window in bptt_windows(rows, data.bptt) if len(rows) else ():
            inputs, targets = window.inputs.to(device), window.targets.to(device)
            features, next_state = model(inputs, state)
            nll = model.nll(features, targets)
            if adapter is not None:
                nll = adapter.window(inputs, targets, state, features, nll)
            total += float(nll.sum())
            state = next_state
            count += window.targets.numel()
    else:
        for indices in sentence_batches(corpus, data.eval_batch_size, seed=None)[shard.rank :: shard.world]:
            window = lines_window(corpus, indices, start_id=BOS)
            features, _ = model(window.inputs.to(device))
            targets = window.targets.to(device)
            total += float(model.nll(features, targets).masked_fill(targets == PAD, 0.0).sum())
            count += int((window.targets != PAD).sum())
    total, count = shard.sum([total, count])
    return total, int(count)

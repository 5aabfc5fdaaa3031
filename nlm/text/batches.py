"""Cutting an encoded corpus into training batches: BPTT windows over parallel rows, or padded sentences.

Stream mode, as in the PyTorch word-language-model example.  The stream is cut into
B rows (the tail that does not fill a row is dropped), and each row is read in
windows of `bptt` steps; the target of every position is the next id:

    stream  a b c d e f g h i j k l m n o p q r s t u v w x        (B = 4, bptt = 2)

    rows    a b c d e f       window 0: inputs [a b]  targets [b c]
            g h i j k l                        [g h]          [h i]
            m n o p q r                        [m n]          [n o]
            s t u v w x                        [s t]          [t u]

Row r continues in the next window exactly where it stopped, so the hidden state of
row r carries over from window to window.

Variable-length BPTT (Merity et al. 2017) reads the same rows in windows whose lengths
are drawn around `bptt`, so the cut points move from epoch to epoch; the lengths come
from a generator seeded by (seed, epoch), so window k of an epoch is the same in a run
resumed there.

Sentence mode: each line is its own sequence, `<bos> w1 .. wn` -> `w1 .. wn <eos>`,
batched with lines of similar length and padded with <pad> (which the loss ignores).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nlm.errors import DataError
from nlm.text.corpus import EncodedCorpus
from nlm.text.symbols import BOS, EOS, PAD


@dataclass(frozen=True)
class Window:
    inputs: torch.Tensor  # long [B, T]
    targets: torch.Tensor  # long [B, T]


def stream_rows(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """A [B, L] view of the stream (no copy: the memory map stays on disk)."""
    length = len(ids) // batch_size
    if length < 2:
        raise DataError(f"{len(ids)} tokens are too few for {batch_size} rows; use a smaller --batch-size")
    return ids[: length * batch_size].reshape(batch_size, length)


def evaluation_rows(tokens: int, batch_size: int) -> int:
    """The rows a stream of `tokens` is evaluated in: `batch_size`, fewer when the stream is short."""
    return min(batch_size, max(1, tokens // 2))


def context_only(tokens: int, batch_size: int) -> np.ndarray:
    """The stream positions `stream_rows` reads but never predicts: each row's first token, and the tail."""
    length = tokens // batch_size
    return np.concatenate([np.arange(batch_size) * length, np.arange(batch_size * length, tokens)])


def count_windows(rows: np.ndarray, bptt: int) -> int:
    return -(-(rows.shape[1] - 1) // bptt)


def bptt_windows(rows: np.ndarray, bptt: int, *, start: int = 0) -> Iterator[Window]:
    """Windows `start`, `start + 1`, ... of `rows`; the last one may be shorter than bptt."""
    length = rows.shape[1]
    for begin in range(start * bptt, length - 1, bptt):
        end = min(begin + bptt, length - 1)
        chunk = torch.from_numpy(np.array(rows[:, begin : end + 1], dtype=np.int64))
        yield Window(inputs=chunk[:, :-1], targets=chunk[:, 1:])


def variable_bptt_lengths(steps: int, bptt: int, *, seed: int, epoch: int) -> list[int]:
    """Window lengths that cover `steps` positions exactly once, as AWD-LSTM draws them: a base of
    bptt (probability 0.95) or bptt / 2, plus normal noise of standard deviation 5, at least 5
    steps; the last window stops at the end of the rows."""
    rng = np.random.default_rng([seed % 2**63, epoch])
    lengths: list[int] = []
    covered = 0
    while covered < steps:
        base = bptt if rng.random() < 0.95 else bptt / 2
        length = min(max(5, int(rng.normal(base, 5))), steps - covered)
        lengths.append(length)
        covered += length
    return lengths


def windows_of_lengths(rows: np.ndarray, lengths: list[int], *, start: int = 0) -> Iterator[Window]:
    """Consecutive windows of `rows` with the given lengths, from window `start` on."""
    begin = sum(lengths[:start])
    for length in lengths[start:]:
        chunk = torch.from_numpy(np.array(rows[:, begin : begin + length + 1], dtype=np.int64))
        yield Window(inputs=chunk[:, :-1], targets=chunk[:, 1:])
        begin += length


def _pad(rows: list[np.ndarray], width: int, first: int | None, last: int | None) -> torch.Tensor:
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for r, row in enumerate(rows):
        body = torch.from_numpy(np.asarray(row, dtype=np.int64))
        if first is not None:
            body = torch.cat([torch.tensor([first]), body])
        if last is not None:
            body = torch.cat([body, torch.tensor([last])])
        out[r, : len(body)] = body
    return out


def sentence_window(lines: list[np.ndarray], *, start_id: int = BOS) -> Window:
    """One padded batch: inputs `<start> w1..wn`, targets `w1..wn <eos>` (lines given without <eos>)."""
    width = max(len(line) for line in lines) + 1
    return Window(inputs=_pad(lines, width, start_id, None), targets=_pad(lines, width, None, EOS))


def sentence_batches(corpus: EncodedCorpus, batch_size: int, *, seed: int | None) -> list[np.ndarray]:
    """Line indices grouped by length into batches; shuffled batch order when `seed` is given."""
    starts = np.concatenate([[0], corpus.line_ends[:-1]])
    lengths = np.asarray(corpus.line_ends) - starts
    order = np.argsort(lengths, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if seed is not None:
        permutation = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed)).tolist()
        batches = [batches[i] for i in permutation]
    return batches


def lines_window(corpus: EncodedCorpus, indices: np.ndarray, *, start_id: int = BOS) -> Window:
    return sentence_window([corpus.line(int(i))[:-1] for i in indices], start_id=start_id)

"""Batching: stream rows and BPTT windows, sentence batches, and the carried state across windows."""

from __future__ import annotations

import numpy as np
import torch

from nlm.models.rnn import RNNLM, RNNConfig, detach_state
from nlm.text.batches import bptt_windows, count_windows, sentence_window, stream_rows
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import encode_corpus
from nlm.text.symbols import BOS, EOS, PAD


def test_rows_and_windows_have_the_right_shapes_and_shifted_targets():
    ids = np.arange(103, dtype=np.int32)
    rows = stream_rows(ids, 4)  # 25 columns; the 3 ids that do not fill a row are dropped
    assert rows.shape == (4, 25) and rows[1, 0] == 25
    windows = list(bptt_windows(rows, 10))
    assert [w.inputs.shape for w in windows] == [(4, 10), (4, 10), (4, 4)] and count_windows(rows, 10) == 3
    for w in windows:
        assert torch.equal(w.inputs[:, 1:], w.targets[:, :-1])
    joined = torch.cat([w.inputs for w in windows], dim=1)
    assert torch.equal(joined, torch.from_numpy(rows[:, :-1].astype(np.int64)))
    assert torch.equal(windows[-1].targets[:, -1], torch.from_numpy(rows[:, -1].astype(np.int64)))
    assert [w.inputs[0, 0].item() for w in bptt_windows(rows, 10, start=1)] == [10, 20]


def test_corpus_is_one_stream_with_eos_after_every_line(tmp_path):
    (tmp_path / "t.txt").write_text("a b\n\nb c a\n")
    vocab, _ = build_vocab(["a b c"], config=VocabConfig())
    corpus = encode_corpus(tmp_path / "t.txt", vocab, cache_dir=tmp_path / "cache")
    a, b, c = (vocab.index[s] for s in "abc")
    assert corpus.ids.tolist() == [a, b, EOS, EOS, b, c, a, EOS] and corpus.lines == 3
    assert corpus.line(2).tolist() == [b, c, a, EOS]
    again = encode_corpus(tmp_path / "t.txt", vocab, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.ids"))) == 1 and again.ids.tolist() == corpus.ids.tolist()


def test_sentence_window_starts_with_the_start_symbol_and_pads():
    window = sentence_window([np.array([5, 6, 7]), np.array([8])])
    assert window.inputs.tolist() == [[BOS, 5, 6, 7], [BOS, 8, PAD, PAD]]
    assert window.targets.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]


def test_windows_with_the_carried_state_equal_one_pass_over_the_sequence():
    torch.manual_seed(0)
    for cell in ("lstm", "gru", "rnn-tanh"):
        model = RNNLM(RNNConfig(vocab_size=30, cell=cell, emb=8, hidden=12, dropout=0.0, tie=False)).eval()
        ids = np.random.default_rng(0).integers(4, 30, size=2 * 41).astype(np.int32)
        rows = stream_rows(ids, 2)
        whole, _ = model(torch.from_numpy(rows[:, :-1].astype(np.int64)))
        state, pieces = None, []
        for window in bptt_windows(rows, 7):
            features, state = model(window.inputs, state)
            state = detach_state(state)
            pieces.append(features)
        torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-5, atol=1e-5)


def test_the_hidden_state_starts_from_zero_at_each_epoch_and_carries_within_it(tiny_corpus):
    from nlm.io.text import read_lines
    from nlm.lm.config import LMDataConfig
    from nlm.lm.task import LMTask
    from nlm.text.build import VocabConfig, build_vocab
    from nlm.text.corpus import encode_corpus

    vocab, _ = build_vocab(read_lines(tiny_corpus[0]), config=VocabConfig())
    torch.manual_seed(0)
    model = RNNLM(RNNConfig(vocab_size=len(vocab), emb=8, hidden=8, layers=1, dropout=0.0)).eval()
    task = LMTask(
        model=model,
        vocab=vocab,
        train=encode_corpus(tiny_corpus[0], vocab),
        valid=None,
        data=LMDataConfig(batch_size=4, bptt=6),
        device=torch.device("cpu"),
        seed=1,
    )
    with torch.no_grad():
        windows = task.train_batches(0, 0)
        task.training_step(next(windows))
        task.training_step(second := next(windows))
        carried = task.state[0].clone()
        assert carried.abs().sum() > 0  # the state after two windows, carried into the third
        resumed = next(task.train_batches(0, 1))  # a resume in the middle of an epoch keeps the state it restored
        assert torch.equal(task.state[0], carried) and torch.equal(resumed.inputs, second.inputs)
        first_of_next_epoch = next(task.train_batches(1, 0))  # a new epoch starts from a zero state
        assert task.state is None
    assert torch.equal(first_of_next_epoch.inputs, next(task.train_batches(0, 0)).inputs)

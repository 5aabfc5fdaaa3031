"""Variable-length BPTT windows, and a tiny model with every AWD-LSTM regulariser training and resuming exactly."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from conftest import write_grammar_corpus

from nlm.io.text import read_lines
from nlm.lm.config import LMDataConfig
from nlm.lm.task import LMTask
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.runtime import rng_state, seed_everything, set_rng_state
from nlm.text.batches import stream_rows, variable_bptt_lengths, windows_of_lengths
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import encode_corpus
from nlm.train.config import TrainConfig
from nlm.train.trainer import Trainer

CPU = torch.device("cpu")


def test_variable_windows_cover_the_rows_exactly_once():
    rows = stream_rows(np.arange(4 * 301, dtype=np.int32), 4)  # 300 steps per row
    lengths = variable_bptt_lengths(300, 20, seed=5, epoch=0)
    assert sum(lengths) == 300 and min(lengths[:-1]) >= 5
    windows = list(windows_of_lengths(rows, lengths))
    assert [w.inputs.size(1) for w in windows] == lengths
    inputs = torch.cat([w.inputs for w in windows], 1)
    targets = torch.cat([w.targets for w in windows], 1)
    assert torch.equal(inputs, torch.from_numpy(rows[:, :-1].astype(np.int64)))
    assert torch.equal(targets, torch.from_numpy(rows[:, 1:].astype(np.int64)))


def test_variable_window_lengths_follow_the_awd_draw_and_come_back_from_seed_and_epoch():
    lengths = variable_bptt_lengths(200_000, 70, seed=1, epoch=0)[:-1]
    short = np.array(lengths) < 52  # N(35, 5) windows; N(70, 5) ones fall below 52 with probability 1e-4
    assert 0.04 < short.mean() < 0.06  # p = 0.05 of bptt / 2
    # Mean: 0.95 * 70 + 0.05 * 35 = 68.25, less about 0.5 for int() rounding toward zero.
    assert abs(np.mean(lengths) - 67.75) < 1.0
    assert abs(np.std(np.array(lengths)[~short]) - 5.0) < 0.3
    again = variable_bptt_lengths(200_000, 70, seed=1, epoch=0)[:-1]
    assert again == lengths
    assert (
        variable_bptt_lengths(2_000, 70, seed=1, epoch=1)
        != lengths[: len(variable_bptt_lengths(2_000, 70, seed=1, epoch=1))]
    )


def _setup(tmp_path, model: RNNConfig, data: LMDataConfig, **train):
    train_file, valid_file = tmp_path / "train.txt", tmp_path / "valid.txt"
    if not train_file.exists():
        write_grammar_corpus(tmp_path, 300)
    vocab, _ = build_vocab(read_lines(train_file), config=VocabConfig())
    corpora = [encode_corpus(f, vocab, cache_dir=tmp_path / "cache") for f in (train_file, valid_file)]
    seed_everything(7)
    network = RNNLM(model.replace(vocab_size=len(vocab)))
    task = LMTask(model=network, vocab=vocab, train=corpora[0], valid=corpora[1], data=data, device=CPU, seed=7)
    config = TrainConfig(optimizer="adam", lr=0.02, device="cpu", seed=7, schedule="none", **train)
    return task, Trainer(task, config, device=CPU, callbacks=[])


EVERYTHING = RNNConfig(
    emb=12,
    hidden=24,
    last_hidden=12,
    layers=3,
    dropout_input=0.2,
    dropout_hidden=0.1,
    dropout_output=0.2,
    locked_dropout=True,
    emb_dropout=0.1,
    weight_drop=0.3,
    ar=1.0,
    tar=1.0,
)
VARIABLE = LMDataConfig(batch_size=8, bptt=10, variable_bptt=True)


def test_a_mid_epoch_position_continues_with_the_same_windows(tmp_path):
    task, _ = _setup(tmp_path, EVERYTHING, VARIABLE)
    full = list(task.train_batches(1, 0))
    assert len(full) == task.batches_per_epoch() and any(w.inputs.size(1) != 10 for w in full)
    other, _ = _setup(tmp_path, EVERYTHING, VARIABLE)
    tail = list(other.train_batches(1, 5))
    assert len(tail) == len(full) - 5 and all(torch.equal(a.inputs, b.inputs) for a, b in zip(tail, full[5:]))
    assert [w.inputs.size(1) for w in task.train_batches(2, 0)] != [
        w.inputs.size(1) for w in full
    ]  # new cuts each epoch


def _valid_loss(task: LMTask) -> float:
    task.model.eval()
    with torch.inference_mode():
        loss = task.evaluate()["loss"]
    task.model.train()
    return loss


def test_every_regulariser_on_a_tiny_model_trains(tmp_path):
    task, trainer = _setup(tmp_path, EVERYTHING, VARIABLE, epochs=6)
    before = _valid_loss(task)
    assert abs(before - math.log(len(task.vocab))) < 0.2  # a fresh model guesses about uniformly
    trainer.fit()
    after = _valid_loss(task)
    # The grammar's entropy is about 0.6 nats a token; six epochs of 300 lines get under half of uniform.
    assert after < 0.45 * before, (before, after)


def _weights(task: LMTask) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    task, trainer = _setup(tmp_path, EVERYTHING, VARIABLE, epochs=2)
    trainer.fit()
    expected = _weights(task)
    steps = len(task.window_lengths(0)) + 3  # stop inside the second epoch, with a carried per-layer state
    task, trainer = _setup(tmp_path, EVERYTHING, VARIABLE, epochs=2, max_steps=steps)
    trainer.fit()
    assert trainer.progress.epoch == 1 and trainer.progress.batch == 3 and isinstance(task.state, list)
    buffer = io.BytesIO()
    torch.save({"model": task.model.state_dict(), "trainer": trainer.state_dict(), "rng": rng_state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    task, trainer = _setup(tmp_path, EVERYTHING, VARIABLE, epochs=2)
    task.model.load_state_dict(saved["model"])
    trainer.load_state_dict(saved["trainer"])
    set_rng_state(saved["rng"])
    trainer.fit()
    resumed = _weights(task)
    assert resumed.keys() == expected.keys()
    for key in expected:
        assert torch.equal(resumed[key], expected[key]), key

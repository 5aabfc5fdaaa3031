"""Training: every cell learns, a small LSTM reaches the entropy of a Markov source, resume is exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import REPO, write_grammar_corpus
from rich.console import Console

from nlm.corpora.markov import MarkovSource
from nlm.errors import TrainingDivergedError
from nlm.lm.config import LMDataConfig
from nlm.lm.training import DEFAULT_LR, LMJob
from nlm.models.rnn import RNNConfig
from nlm.train.config import TrainConfig

QUIET = Console(stderr=True, quiet=True)


def train(tmp_path, corpus, *, name="run", model=None, data=None, **train_options):
    model = model or RNNConfig(emb=16, hidden=32, layers=1, dropout=0.0, tie=False)
    job = LMJob(
        train=str(corpus[0]), valid=str(corpus[1]), model=model, data=data or LMDataConfig(batch_size=8, bptt=10)
    )
    return job.start(output=tmp_path / name, train=TrainConfig(**train_options), console=QUIET, quiet=True)


def vocab_size(run_dir: Path) -> int:
    return json.loads((run_dir / "config.json").read_text())["model"]["vocab_size"]


def valid_losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def grammar_corpus(tmp_path) -> tuple[Path, Path]:
    return write_grammar_corpus(tmp_path, 1000)


@pytest.mark.parametrize("cell", ["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_every_cell_learns_with_its_default_learning_rate(tmp_path, grammar_corpus, cell):
    result = train(
        tmp_path,
        grammar_corpus,
        model=RNNConfig(cell=cell, emb=16, hidden=32, layers=2, dropout=0.1, tie=False),
        epochs=3,
    )
    losses = valid_losses(result.run_dir)
    uniform = math.log(vocab_size(result.run_dir))
    assert losses[-1] < losses[0] and losses[-1] < 0.5 * uniform, losses


def test_a_plain_rnn_diverges_at_the_lstm_learning_rate(tmp_path, grammar_corpus):
    model = RNNConfig(cell="rnn-tanh", emb=16, hidden=32, layers=2, dropout=0.1, tie=False)
    # At the LSTM's rate it ends worse than guessing uniformly, or so far worse that the divergence guard stops it
    # (which of the two depends on the last bits of the arithmetic; both mean it did not learn).
    try:
        result = train(tmp_path, grammar_corpus, model=model, epochs=2, lr=DEFAULT_LR["sgd"]["lstm"])
    except TrainingDivergedError as diverged:
        assert "training diverged" in str(diverged)
        return
    assert min(valid_losses(result.run_dir)) > math.log(vocab_size(result.run_dir))


def test_sentence_mode_learns(tmp_path, tiny_corpus):
    result = train(
        tmp_path, tiny_corpus, data=LMDataConfig(mode="sentence", batch_size=8), epochs=3, optimizer="adam", lr=0.01
    )
    losses = valid_losses(result.run_dir)
    assert losses[-1] < losses[0] and losses[-1] < 1.5, losses


@pytest.mark.slow
def test_lstm_reaches_the_entropy_rate_of_a_markov_source(tmp_path):
    source = MarkovSource.load(REPO / "corpora" / "markov" / "source.json")
    corpus = (REPO / "corpora" / "markov" / "train.txt", REPO / "corpora" / "markov" / "valid.txt")
    result = train(
        tmp_path,
        corpus,
        model=RNNConfig(emb=32, hidden=32, layers=1, dropout=0.0),
        data=LMDataConfig(batch_size=16, bptt=20),
        optimizer="adam",
        lr=0.01,
        clip=1.0,
        epochs=4,
    )
    entropy = source.entropy_rate()
    # The model cannot beat the source (beyond the sampling noise of 9,020 validation tokens) ...
    assert result.progress.best_loss > entropy * 0.98
    # ... and gets within 5% of it.
    assert result.progress.best_loss < entropy * 1.05, (result.progress.best_loss, entropy)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_corpus, precision):
    model = RNNConfig(emb=32, hidden=32, layers=2, dropout=0.3)  # dropout: the RNG state must be restored too
    options = dict(model=model, epochs=2, precision=precision)  # exact within a precision, bf16 on the CPU included
    straight = train(tmp_path, tiny_corpus, name="straight", **options)
    # Stop after the first epoch, then resume for the second.
    train(tmp_path, tiny_corpus, name="epochwise", **{**options, "epochs": 1})
    LMJob.resume(run_dir=tmp_path / "epochwise", changes={"epochs": 2}, console=QUIET, quiet=True)
    # Stop in the middle of an epoch (the hidden state and data position are saved), then resume.
    train(tmp_path, tiny_corpus, name="midway", **{**options, "max_steps": 13})
    LMJob.resume(run_dir=tmp_path / "midway", changes={"max_steps": 10**9}, console=QUIET, quiet=True)
    expected = _weights(straight.run_dir)
    for name in ("epochwise", "midway"):
        resumed = _weights(tmp_path / name)
        assert resumed.keys() == expected.keys()
        for key in expected:
            assert torch.equal(resumed[key], expected[key]), (name, key)
    assert valid_losses(tmp_path / "epochwise") == valid_losses(straight.run_dir)


def test_checkpoint_is_self_contained_and_loads_with_weights_only(tmp_path, tiny_corpus):
    result = train(tmp_path, tiny_corpus, epochs=1)
    checkpoint = torch.load(result.run_dir / "best.pt", map_location="cpu", weights_only=True)
    assert checkpoint["format"] == "nlm-checkpoint" and checkpoint["kind"] == "lm"
    assert set(checkpoint) >= {"config", "model", "vocab", "trainer", "rng", "metrics"}
    assert checkpoint["vocab"]["symbols"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert set(checkpoint["trainer"]) == {"optimizer", "progress", "task", "callbacks"}
    assert (
        "ReduceLROnPlateau" not in checkpoint["trainer"]["callbacks"]
        and checkpoint["trainer"]["callbacks"]["LRSchedule"]["factor"] == 0.25
    )
    assert checkpoint["trainer"]["progress"]["elapsed"] > 0  # the saving session's own time counts
    meta = json.loads((result.run_dir / "meta.json").read_text())
    assert meta["checkpoints"]["best"]["epoch"] == 1
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["model"]["vocab_size"] == len(checkpoint["vocab"]["symbols"])
    assert not list(result.run_dir.glob("*.tmp")) and [p.name for p in result.run_dir.glob(".*")] == [".lock"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_trained_checkpoint_loads_and_runs_on_the_cpu(tmp_path, tiny_corpus):
    from nlm.models.rnn import RNNLM

    result = train(tmp_path, tiny_corpus, epochs=1, device="cuda", precision="bf16")
    checkpoint = torch.load(result.run_dir / "best.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    model = RNNLM(RNNConfig.from_dict(checkpoint["config"]["model"]))
    model.load_state_dict(checkpoint["model"])
    features, _ = model.eval()(torch.tensor([[3, 4, 5]]))
    assert torch.isfinite(model.log_probs(features)).all()


def test_early_stopping_ends_the_run_after_patience_evaluations_without_improvement(tmp_path, tiny_corpus):
    # A learning rate so small that float32 weights cannot move: the validation loss repeats exactly.
    result = train(tmp_path, tiny_corpus, epochs=10, lr=1e-30, patience=2, schedule="none")
    losses = valid_losses(result.run_dir)
    assert len(losses) == 3 and losses[0] == losses[1] == losses[2]
    assert result.stop_reason == "early-stopping" and result.progress.best_epoch == 0

"""Inputs as a careless user gives them: bad files, nonsense options, non-finite numbers, foreign checkpoints,
closed stdin, NaN images, empty input, very long lines; and the messages a user reads about them.

Each table row is input -> exit code and a phrase of the one stderr line; nothing is written for a refused input.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import (
    TINY_LM,
    nlm,
    nlm_process,
    one_line_error,
    says_one_line,
)
from lm_helpers import SOURCE

from nlm.errors import InputMissingError
from nlm.io.text import file_sha256
from nlm.lm.loading import load_language_model
from nlm.lm.scoring import LOGIT_BUDGET, score_ids, score_sentences
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.text.symbols import EOS


def _bad_files(folder: Path) -> None:
    (folder / "empty.txt").write_text("")
    (folder / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "bad.vocab").write_text("<pad>\t0\n<unk>\t0\n<bos>\t0\n<eos>\t0\nword without count\n")


BAD_INPUTS = [
    (["--train", "missing.txt"], 66, "missing.txt: no such file"),
    (["--train", "empty.txt"], 65, "empty.txt is empty"),
    (["--train", "binary.bin"], 65, "binary.bin holds NUL bytes; it looks like a binary file"),
    (["--train", "latin1.txt"], 65, "latin1.txt:2: not valid UTF-8"),
    (["--train", "train.txt", "--vocab", "bad.vocab"], 65, "bad.vocab:5: malformed vocabulary line"),
    (["--train", "train.txt", "--bptt", "0"], 2, "--bptt must be at least 1"),
    (["--train", "train.txt", "--dropout", "1.5"], 2, "--dropout must be in [0, 1)"),
    (["--train", "train.txt", "--lr", "-1"], 2, "--lr must be positive"),
    (["--train", "train.txt", "--device", "cuda"], 69, "no CUDA device"),
]


@pytest.mark.parametrize("args, code, message", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_gives_one_line_and_an_exit_code(corpus, monkeypatch, args, code, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _bad_files(corpus)
    monkeypatch.chdir(corpus)
    one_line_error(nlm("train", "-o", "run", *TINY_LM, *args), code, message)
    assert not (corpus / "run").exists()


def test_unequal_sizes_train_untied_unless_tying_is_asked_for(corpus):
    common = [
        "train",
        "--train",
        corpus / "train.txt",
        "--emb",
        "8",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--epochs",
        "1",
        "-q",
    ]
    assert nlm(*common, "-o", corpus / "untied").exit_code == 0
    assert json.loads((corpus / "untied" / "config.json").read_text())["model"]["tie"] is False
    one_line_error(nlm(*common, "-o", corpus / "tied", "--tie"), 2, "--tie needs --emb equal to --hidden")


MESSAGES = [
    (["--level", "char", "--vocab", "v.txt"], 2, "--level build a vocabulary, but --vocab v.txt gives one"),
    (["--level", "bpe"], 2, "a bpe vocabulary needs --vocab-size"),
    (["--bptt", "abc"], 2, "Invalid value for '--bptt'"),
    (["--hiden", "3"], 2, "No such option: --hiden"),
    (["--save-every", "ten"], 2, "--save-every takes a number of steps"),
]


@pytest.mark.parametrize("options, code, phrase", MESSAGES, ids=lambda v: v if isinstance(v, str) else None)
def test_options_that_cannot_apply_are_one_line_and_2(corpus, monkeypatch, options, code, phrase):
    monkeypatch.chdir(corpus)
    (corpus / "v.txt").write_text("<pad>\t0\n<unk>\t0\n<bos>\t0\n<eos>\t0\ncat\t1\n")
    one_line_error(nlm("train", "--train", "train.txt", "-o", "run", *options), code, phrase)


def test_without_validation_the_progress_says_train_loss(corpus):
    result = nlm("train", "--train", corpus / "train.txt", "-o", corpus / "run", "--epochs", "1", *TINY_LM[:-1])
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("epoch 1 |"))
    assert "| train loss" in line and "(best)" in line and "valid" not in line


def test_a_subword_build_reports_pieces_the_same_way_in_vocab_and_train(corpus):
    built = nlm(
        "vocab", "build", corpus / "train.txt", "-o", corpus / "v.model", "--level", "bpe", "--vocab-size", "40"
    )
    trained = nlm(
        "train",
        "--train",
        corpus / "train.txt",
        "-o",
        corpus / "run",
        "--level",
        "bpe",
        "--vocab-size",
        "40",
        "--epochs",
        "1",
        *TINY_LM[:-1],
    )
    assert built.exit_code == trained.exit_code == 0, trained.stderr
    described = built.stderr.split(": ", 1)[1].strip()
    assert f"vocabulary: {described}" in trained.stderr and "40 pieces," in described


def test_version():
    result = nlm("--version")
    assert result.exit_code == 0 and result.stdout.startswith("nlm 0.")


def _forward_shapes(model: torch.nn.Module) -> tuple[list[tuple[int, int]], object]:
    shapes: list[tuple[int, int]] = []
    handle = model.register_forward_hook(lambda module, args, output: shapes.append(tuple(args[0].shape)))
    return shapes, handle


def test_a_long_line_scored_in_small_windows_equals_one_pass(lm_run):
    lm = load_language_model(lm_run)
    line = " ".join(SOURCE.sample(600, seed=5))  # about 3,600 tokens
    tokens = len(lm.vocab.encode(line)) + 1
    (whole,) = score_sentences(lm, [line], per_token=True)
    shapes, handle = _forward_shapes(lm.model)
    try:
        (windowed,) = score_sentences(lm, [line], per_token=True, logit_budget=64 * len(lm.vocab))
    finally:
        handle.remove()
    assert max(rows * steps for rows, steps in shapes) == 64  # 64 steps of one row per forward pass
    assert len(shapes) == -(-tokens // 64)
    assert windowed.tokens == whole.tokens == tokens
    np.testing.assert_allclose(windowed.token_logprobs, whole.token_logprobs, atol=1e-5, rtol=0)
    assert windowed.logprob == pytest.approx(whole.logprob, abs=1e-5 * tokens)


def test_no_forward_pass_exceeds_the_logit_budget_whatever_the_line_length():
    """A 32k-symbol vocabulary: one pass over 2,500 tokens would form 82M logits (330 MB)."""
    torch.manual_seed(0)
    model = RNNLM(RNNConfig(vocab_size=1 << 15, emb=4, hidden=4, layers=1, dropout=0.0)).eval()
    ids = torch.randint(4, 1 << 15, (2500,)).tolist()
    shapes, handle = _forward_shapes(model)
    try:
        (scores,) = score_ids(model, [ids], start_id=EOS)
    finally:
        handle.remove()
    assert max(rows * steps for rows, steps in shapes) * (1 << 15) <= LOGIT_BUDGET
    assert sum(steps for _, steps in shapes) == len(ids) + 1 == len(scores)
    assert np.isfinite(scores).all() and (scores < 0).all()


@pytest.mark.parametrize(
    "command",
    [["score", "-m", "RUN", "-"], ["perplexity", "-m", "RUN", "-"], ["vocab", "build", "-o", "OUT"]],
    ids=["score", "perplexity", "vocab build"],
)
def test_a_closed_stdin_is_one_line_and_exit_66(command, lm_run, tmp_path):
    out = tmp_path / "v.txt"
    args = [lm_run if a == "RUN" else out if a == "OUT" else a for a in command]
    done = nlm_process(*args, preexec_fn=lambda: os.close(0))
    assert done.returncode == 66, done.stderr
    says_one_line(done.stderr, "stdin is closed")
    assert not out.exists() and done.stdout == ""


NON_FINITE = [
    (["train", *TINY_LM, "--epochs", "1"], "--lr", "inf"),
    (["train", *TINY_LM, "--epochs", "1"], "--lr", "nan"),
    (["train", *TINY_LM, "--epochs", "1"], "--init-range", "inf"),
    (["train", *TINY_LM, "--epochs", "1"], "--dropout", "nan"),
    (["train", *TINY_LM, "--epochs", "1"], "--clip", "inf"),
    (["train", *TINY_LM, "--epochs", "1"], "--max-time", "inf"),
    (["generate"], "--temperature", "inf"),
    (["generate"], "--top-p", "nan"),
    (["vision", "train", "--data", "generated:64", "-q"], "--lr", "inf"),
    (["vision", "train", "--data", "generated:64", "--adversarial", "-q"], "--epsilon", "inf"),
    (["vision", "train", "--data", "generated:64", "--arch", "mlp", "-q"], "--dropout", "nan"),
    (["autoencoder", "train", "--data", "generated:64", "-q"], "--noise", "inf"),
    (["autoencoder", "train", "--data", "generated:64", "-q"], "--sparsity", "nan"),
    (["autoencoder", "train", "--data", "generated:64", "-q"], "--weight-decay", "inf"),
]


@pytest.mark.parametrize(
    "command, option, value",
    NON_FINITE,
    ids=[" ".join([*(w for w in c[:2] if not w.startswith("-")), o, v]) for c, o, v in NON_FINITE],
)
def test_a_non_finite_option_is_refused_before_any_work(command, option, value, lm_run, markov_corpus, tmp_path):
    run = tmp_path / "run"
    if command[0] == "generate":
        extra = ["-m", lm_run, "--seed", "1", "--device", "cpu"]
    else:
        extra = ["-o", run, "--device", "cpu"] + (["--train", markov_corpus[0]] if command[0] == "train" else [])
    result = nlm(*command, *extra, option, value)
    assert result.exit_code == 2, result.stderr
    says_one_line(result.stderr, f"{option} must be a finite number, not {value}")
    assert not run.exists() and result.stdout == ""


class _Opener:
    """Unpickled, this would create a file: weights_only must refuse it before anything runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _not_checkpoints(folder: Path, real: Path) -> dict[str, Path]:
    files = {
        name: folder / f"{name}.pt" for name in ("text", "random", "empty", "truncated", "objects", "pickle", "tensors")
    }
    files["text"].write_text("this is a text file\n")
    files["random"].write_bytes(random.Random(0).randbytes(4096))
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    torch.save({"format": "nlm-checkpoint", "payload": _Opener(folder / "MARKER")}, files["objects"])
    files["pickle"].write_bytes(pickle.dumps({"x": 1}, protocol=2))
    torch.save({"weight": torch.zeros(3)}, files["tensors"])
    return files


NOT_CHECKPOINTS = [
    ("text", "is not an nlm checkpoint: not a PyTorch file"),
    ("random", "is not an nlm checkpoint: not a PyTorch file"),
    ("empty", "is not an nlm checkpoint: the file is empty"),
    ("truncated", "is not an nlm checkpoint: a truncated or damaged PyTorch file"),
    ("objects", "is not an nlm checkpoint: a PyTorch file that holds no nlm checkpoint: it stores Python objects"),
    ("pickle", "is not an nlm checkpoint: not a PyTorch file but a Python pickle"),
    ("tensors", "is not an nlm checkpoint: a PyTorch file that holds no nlm checkpoint"),
]


@pytest.mark.parametrize("name, words", NOT_CHECKPOINTS, ids=[n for n, _ in NOT_CHECKPOINTS])
def test_a_file_that_is_not_a_checkpoint_says_what_it_is(name, words, lm_run, markov_corpus, tmp_path):
    path = _not_checkpoints(tmp_path, lm_run / "best.pt")[name]
    for command in (
        ["score", "-m", path, markov_corpus[1]],
        ["autoencoder", "encode", "-m", path, "--data", "generated:4", "-o", tmp_path / "codes.npy"],
    ):
        result = nlm(*command)
        assert result.exit_code == 65, result.stderr
        says_one_line(result.stderr, f"{path.name} {words}")
    assert not (tmp_path / "MARKER").exists()  # nothing in the file ran
    assert not (tmp_path / "codes.npy").exists()


def test_a_missing_training_file_with_a_vocabulary_is_named(markov_corpus, tmp_path):
    assert nlm("vocab", "build", markov_corpus[0], "-o", tmp_path / "v.txt").exit_code == 0
    result = nlm(
        "train",
        "--train",
        tmp_path / "gone.txt",
        "--vocab",
        tmp_path / "v.txt",
        "-o",
        tmp_path / "run",
        *TINY_LM,
        "--epochs",
        "1",
    )
    assert result.exit_code == 66, result.stderr
    says_one_line(result.stderr, "gone.txt: no such file")
    with pytest.raises(InputMissingError, match="gone.txt: no such file"):
        file_sha256(tmp_path / "gone.txt")


@pytest.mark.parametrize("command", ["vision train", "autoencoder train", "autoencoder encode"])
def test_images_holding_nan_are_refused(command, ae_run, tmp_path):
    x = np.full((16, 28, 28), 0.5, dtype=np.float32)
    x[3, 1, 2] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, x=x, y=np.arange(16) % 2)
    if command == "autoencoder encode":
        args = ["autoencoder", "encode", "-m", ae_run, "-o", tmp_path / "codes.npy"]
    else:
        args = [*command.split(), "-o", tmp_path / "run", "--device", "cpu", "--max-steps", "1", "-q"]
    result = nlm(*args, "--data", data)
    assert result.exit_code == 65, result.stderr
    says_one_line(result.stderr, "nan.npz: x holds NaN or infinite values (image 3 is the first)")
    assert not (tmp_path / "codes.npy").exists()


def test_token_counts_say_what_they_count_and_add_up(lm_run, markov_corpus, tmp_path):
    train, valid = markov_corpus
    lines = valid.read_text().splitlines()
    words = sum(len(line.split()) for line in lines)
    check = nlm("vocab", "build", train, "-o", tmp_path / "v.txt", "--check", valid)
    assert check.exit_code == 0, check.stderr
    assert f"{words:,} tokens without <eos> ({words + len(lines):,} with one <eos> per line" in check.stderr
    stream = nlm("perplexity", "-m", lm_run, valid)
    assert stream.exit_code == 0, stream.stderr
    text_tokens, rows = words + len(lines), 4  # the tiny model's eval batch size
    predicted = rows * (text_tokens // rows - 1)
    tail = text_tokens % rows
    assert f"{predicted:,} predicted tokens" in stream.stdout
    assert f"{predicted:,} of the text's {text_tokens:,} tokens (one <eos> per line) predicted" in stream.stdout
    assert f"the first token of each of the {rows} rows" in stream.stdout
    assert (f"the {tail}-token tail that fills no row" in stream.stdout) == (tail > 0)
    sentence = nlm("perplexity", "-m", lm_run, valid, "--protocol", "sentence")
    assert (
        f"{text_tokens:,} predicted tokens" in sentence.stdout
        and "every token predicted, one <eos> per line" in sentence.stdout
    )


@pytest.mark.parametrize(
    "command",
    [["score"], ["perplexity"], ["perplexity", "--protocol", "sentence"]],
    ids=["score", "perplexity stream", "perplexity sentence"],
)
def test_an_empty_input_is_an_error_and_empty_lines_are_sentences(command, lm_run, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = nlm(command[0], "-m", lm_run, empty, *command[1:])
    assert result.exit_code == 65, result.stderr
    says_one_line(result.stderr, "is empty: nothing to score")
    assert "nan" not in result.stdout + result.stderr
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n\n")
    result = nlm(command[0], "-m", lm_run, blank, *command[1:])
    assert result.exit_code == 0, result.stderr
    assert "nan" not in result.stdout + result.stderr
    if command == ["score"]:
        assert [row.split("\t")[1:3] for row in result.stdout.splitlines()] == [["1", "0"]] * 3

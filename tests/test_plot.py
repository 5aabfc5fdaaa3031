"""`nlm plot`: training curves of language-model, classifier and autoencoder runs, read from metrics.jsonl."""

from __future__ import annotations

import json
import math

import pytest
from cli_helpers import nlm, one_line_error, png_size
from lm_helpers import session_root, train_tiny_lm

from nlm.io.curves import run_series

IMAGES = [
    "--data",
    "generated:200:1",
    "--valid",
    "generated:60:2",
    "--epochs",
    2,
    "--batch-size",
    50,
    "--device",
    "cpu",
    "-q",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    folders = {"lm": train_tiny_lm(session_root(tmp_path_factory), "word")}
    for kind, extra in [("vision", ["--arch", "mlp", "--hidden", 16]), ("autoencoder", ["--hidden", 16])]:
        folders[kind] = root / kind
        result = nlm(kind, "train", "-o", folders[kind], *extra, *IMAGES)
        assert result.exit_code == 0, result.stderr
    return folders


def test_series_are_the_numbers_of_metrics_jsonl(runs):
    rows = [json.loads(line) for line in (runs["lm"] / "metrics.jsonl").read_text().splitlines()]
    train, valid = run_series(runs["lm"], x="step", y="ppl")
    assert (train.label, valid.label) == ("word train", "word valid") and train.group == valid.group == "word"
    assert list(valid.x) == [r["step"] for r in rows] and list(valid.y) == [r["ppl"] for r in rows]
    assert list(train.y) == pytest.approx([math.exp(r["train_loss"]) for r in rows])
    (accuracy,) = run_series(runs["vision"], x="epoch", y="accuracy")  # classifiers have no training accuracy
    assert list(accuracy.x) == [1.0, 2.0] and all(0 <= a <= 1 for a in accuracy.y)


@pytest.mark.parametrize(
    "kind, options",
    [
        ("lm", ["--y", "ppl", "--log"]),
        ("lm", ["--x", "time"]),
        ("vision", ["--x", "epoch", "--y", "accuracy"]),
        ("autoencoder", ["--y", "mse"]),
    ],
)
def test_each_kind_of_run_draws_a_png(runs, tmp_path, kind, options):
    out = tmp_path / "curves.png"
    result = nlm("plot", runs[kind], "-o", out, *options)
    assert result.exit_code == 0, result.stderr
    assert png_size(out) == (640, 400) and result.stdout == "" and "(640x400)" in result.stderr


def test_several_runs_go_on_one_chart(runs, tmp_path):
    out = tmp_path / "all.png"
    result = nlm("plot", runs["lm"], runs["vision"], runs["autoencoder"], "-o", out)
    assert result.exit_code == 0, result.stderr
    assert png_size(out) == (640, 400) and "of 3 run(s)" in result.stderr


def test_bad_runs_are_one_line_errors(runs, tmp_path):
    one_line_error(nlm("plot", tmp_path, "-o", tmp_path / "x.png"), 66, "has no metrics.jsonl")
    one_line_error(nlm("plot", tmp_path / "none", "-o", tmp_path / "x.png"), 66, "is not a folder")
    one_line_error(nlm("plot", runs["lm"], "-o", tmp_path / "x.png", "--y", "accuracy"), 2, "its measures are loss")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n')
    one_line_error(nlm("plot", broken, "-o", tmp_path / "x.png"), 65, "metrics.jsonl:2: not a JSON line")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "kind, y, measures",
    [
        ("autoencoder", "ppl", "loss, mse"),  # exp(MSE) is no perplexity
        ("vision", "bpc", "loss, accuracy"),  # nor a classifier's loss in bits a bit per character
        ("vision", "mse", "loss, accuracy"),
        ("lm", "mse", "loss, ppl, bpc"),
    ],
)
def test_a_measure_the_runs_kind_does_not_have_is_refused(runs, tmp_path, kind, y, measures):
    out = tmp_path / "x.png"
    one_line_error(nlm("plot", runs[kind], "-o", out, "--y", y), 2, f"does not apply to {runs[kind]}")
    assert f"its measures are {measures}" in nlm("plot", runs[kind], "-o", out, "--y", y).stderr and not out.exists()


def test_bits_are_per_token_for_word_models_and_per_character_for_char_models(runs, tmp_path_factory, tmp_path):
    chars = train_tiny_lm(session_root(tmp_path_factory), "char", level="char")
    for folders, label in [([runs["lm"]], "bits per token"), ([chars], "bits per character")]:
        result = nlm("plot", *folders, "-o", tmp_path / "bits.png", "--y", "bpc")
        assert result.exit_code == 0 and f"wrote the {label} curves of 1 run(s)" in result.stderr, result.stderr
    train, valid = run_series(runs["lm"], x="step", y="bpc")  # from the loss in nats, for word models too
    rows = [json.loads(line) for line in (runs["lm"] / "metrics.jsonl").read_text().splitlines()]
    assert list(valid.y) == pytest.approx([r["loss"] / math.log(2) for r in rows])
    mixed = nlm("plot", runs["lm"], chars, "-o", tmp_path / "both.png", "--y", "bpc")
    assert "bits per character (char models) or per token" in mixed.stderr, mixed.stderr

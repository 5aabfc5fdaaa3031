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
    one_line_error(nlm("plot", runs["lm"], "-o", tmp_path / "x.png", "--y", "accuracy"), 65, "has no 'accuracy'")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n')
    one_line_error(nlm("plot", broken, "-o", tmp_path / "x.png"), 65, "metrics.jsonl:2: not a JSON line")
    assert not (tmp_path / "x.png").exists()

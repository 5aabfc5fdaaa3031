"""`nlm vocab` and `nlm train` through the real CLI: what they write and report (bad input: test_hostile_*.py)."""

from __future__ import annotations

import json
import re

from cli_helpers import nlm, one_line_error

SMALL = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "8", "-q"]


def test_vocab_build_reports_coverage_and_oov_rate(tiny_corpus, tmp_path):
    train, valid = tiny_corpus
    result = nlm("vocab", "build", train, "-o", tmp_path / "v.txt", "--check", valid)
    assert result.exit_code == 0, result.stderr
    assert "coverage 100.00%" in result.stderr and f"{valid}: " in result.stderr and "OOV rate" in result.stderr
    assert result.stdout == ""  # stdout is for data only
    shown = nlm("vocab", "show", tmp_path / "v.txt", "--top", "5")
    assert shown.exit_code == 0 and "level: word" in shown.stdout and "lines: 300" in shown.stdout
    listed = [line.split("\t")[0] for line in shown.stdout.splitlines() if "\t" in line]
    assert listed == ["4", "5", "6", "7", "8"]  # --top 5 symbols after the specials, whose counts the summary gives


def test_vocab_build_reads_stdin(tmp_path):
    result = nlm("vocab", "build", "-o", tmp_path / "v.txt", "--level", "char", input="ab\nba c\n")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "v.txt").read_text().splitlines()[4:] == ["a\t2", "b\t2", " \t1", "c\t1"]


def test_train_writes_a_complete_run_folder(tiny_corpus, tmp_path):
    train, valid = tiny_corpus
    result = nlm("train", "--train", train, "--valid", valid, "-o", tmp_path / "run", "--epochs", "2", *SMALL)
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "best.pt",
        "last.pt",
        "metrics.jsonl",
        "meta.json",
        "config.json",
        ".lock",
    }
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and all(m["ppl"] > 1 for m in metrics)
    again = nlm("train", "--train", train, "-o", tmp_path / "run", "--level", "bpe", "--vocab-size", "20")
    one_line_error(again, 73, "already holds a run")  # said before a vocabulary is built: no `vocabulary:` line
    resumed = nlm("train", "--resume", tmp_path / "run", "--epochs", "3", "-q")
    assert resumed.exit_code == 0, resumed.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3


def test_adaptive_softmax_and_awd_regularisers_train_and_score_from_the_cli(tiny_corpus, tmp_path):
    train, valid = tiny_corpus
    common = ["train", "--train", train, "--valid", valid, "--epochs", "1", "--batch-size", "4", "--bptt", "8", "-q"]
    runs = {
        "adaptive": ["--hidden", "16", "--layers", "1", "--softmax", "adaptive", "--cutoffs", "7,11"],
        "awd": [
            "--emb",
            "8",
            "--hidden",
            "16",
            "--last-hidden",
            "8",
            "--layers",
            "2",
            "--locked-dropout",
            "--weight-drop",
            "0.3",
            "--emb-dropout",
            "0.1",
            "--dropout-input",
            "0.3",
            "--ar",
            "1",
            "--tar",
            "1",
            "--variable-bptt",
            "--rnn-init",
            "pytorch",
        ],
    }
    for name, options in runs.items():
        result = nlm(*common, "-o", tmp_path / name, *options)
        assert result.exit_code == 0, result.stderr
        model = json.loads((tmp_path / name / "config.json").read_text())["model"]
        scored = nlm("score", "-m", tmp_path / name, valid, "-q")
        assert scored.exit_code == 0, scored.stderr
        assert len(scored.stdout.splitlines()) == 60 and all(
            float(row.split("\t")[0]) < 0 for row in scored.stdout.splitlines()
        )
    assert model["weight_drop"] == 0.3 and model["last_hidden"] == 8 and model["tie"] is True
    refused = nlm("train", "--train", train, "-o", tmp_path / "bad", "--softmax", "adaptive", "--cutoffs", "2000", "-q")
    assert refused.exit_code == 2 and "below the vocabulary size" in refused.stderr and not (tmp_path / "bad").exists()


def test_a_step_budget_without_epochs_trains_until_it_runs_out_and_the_run_says_so(tiny_corpus, tmp_path):
    """--max-steps and no --epochs: as many epochs as the budget allows; the stop line and metrics.jsonl name the limit;
    --save-every says each mid-epoch save."""
    train, valid = tiny_corpus
    run = tmp_path / "run"
    options = ["--hidden", "16", "--layers", "1", "--batch-size", "20", "--bptt", "35"]
    result = nlm(
        "train", "--train", train, "--valid", valid, "-o", run, *options, "--max-steps", "25", "--save-every", "3"
    )
    assert result.exit_code == 0, result.stderr
    batches = int(re.search(r"; (\d+) batches per epoch", result.stderr).group(1))
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert (
        metrics[-1]["stop"] == "max-steps" and metrics[-1]["step"] == 25 and all("stop" not in m for m in metrics[:-1])
    )
    assert metrics[-1]["epoch"] == 25 // batches + 1 > 6  # past the default --epochs 6
    assert "stopped (max-steps: 25 steps) after 25 steps" in result.stderr
    for step in (3, 6, 24):  # mid-epoch saves say where they are
        epoch, batch = divmod(step - 1, batches)
        assert f"step {step}: saved last.pt (epoch {epoch + 1}, batch {batch + 1} of {batches})" in result.stderr
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] is None
    default = nlm("train", "--train", train, "--valid", valid, "-o", tmp_path / "default", *options)
    assert default.exit_code == 0 and "stopped (epochs: 6 epochs) after " in default.stderr, default.stderr

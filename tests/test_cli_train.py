"""`nlm vocab` and `nlm train` through the real CLI: outputs, and each bad input's message and exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO
from typer.testing import CliRunner

from nlm.cli import app

runner = CliRunner()
SMALL = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "8", "-q"]


def nlm(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_vocab_build_reports_coverage_and_oov_rate(tiny_corpus, tmp_path):
    train, valid = tiny_corpus
    result = nlm("vocab", "build", train, "-o", tmp_path / "v.txt", "--check", valid)
    assert result.exit_code == 0, result.stderr
    assert "coverage 100.00%" in result.stderr and f"{valid}: " in result.stderr and "OOV rate" in result.stderr
    assert result.stdout == ""  # stdout is for data only
    shown = nlm("vocab", "show", tmp_path / "v.txt", "--top", "5")
    assert shown.exit_code == 0 and "level: word" in shown.stdout and "3\t<eos>\t300" in shown.stdout


def test_vocab_build_reads_stdin(tmp_path):
    result = runner.invoke(app, ["vocab", "build", "-o", str(tmp_path / "v.txt"), "--level", "char"], input="ab\nba c\n")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "v.txt").read_text().splitlines()[4:] == ["a\t2", "b\t2", " \t1", "c\t1"]


def test_train_writes_a_complete_run_folder(tiny_corpus, tmp_path):
    train, valid = tiny_corpus
    result = nlm("train", "--train", train, "--valid", valid, "-o", tmp_path / "run", "--epochs", "2", *SMALL)
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"best.pt", "last.pt", "metrics.jsonl", "meta.json", "config.json"}
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and all(m["ppl"] > 1 for m in metrics)
    again = nlm("train", "--train", train, "-o", tmp_path / "run", *SMALL)
    assert again.exit_code == 73 and "already holds a run" in again.stderr
    resumed = nlm("train", "--resume", tmp_path / "run", "--epochs", "3", "-q")
    assert resumed.exit_code == 0, resumed.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3


def _bad_files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "latin1.txt").write_bytes(b"fine line\ncaf\xe9 au lait\n")
    (tmp_path / "bad.vocab").write_text("<pad>\t0\n<unk>\t0\n<bos>\t0\n<eos>\t0\nword without count\n")
    (tmp_path / "ok.txt").write_text("".join(f"a b c {i % 7} d e\n" for i in range(200)))


BAD_INPUTS = [
    (["--train", "missing.txt"], 66, "missing.txt: no such file"),
    (["--train", "empty.txt"], 65, "empty.txt is empty"),
    (["--train", "binary.bin"], 65, "binary.bin holds NUL bytes; it looks like a binary file"),
    (["--train", "latin1.txt"], 65, "latin1.txt:2: not valid UTF-8"),
    (["--train", "ok.txt", "--vocab", "bad.vocab"], 65, "bad.vocab:5: malformed vocabulary line"),
    (["--train", "ok.txt", "--bptt", "0"], 2, "--bptt must be at least 1"),
    (["--train", "ok.txt", "--dropout", "1.5"], 2, "--dropout must be in [0, 1)"),
    (["--train", "ok.txt", "--tie", "--emb", "8", "--hidden", "16"], 2, "--tie needs --emb equal to --hidden"),
    (["--train", "ok.txt", "--lr", "-1"], 2, "--lr must be positive"),
    (["--train", "ok.txt", "--device", "cuda"], 69, "no CUDA device"),
    (["--train", "ok.txt", "--lr", "1e30", "--clip", "0"], 70, "the training loss became nan"),
]


@pytest.mark.parametrize("args, code, message", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_gives_one_line_and_an_exit_code(tmp_path, monkeypatch, args, code, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _bad_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = nlm("train", "-o", "run", "--emb", "16", "--hidden", "16", "--layers", "1", "-q", *args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "last.pt").exists()


def test_ctrl_c_saves_a_loadable_last_checkpoint_and_exits_130(tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 3000)
    log = tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "nlm", "train", "--train", str(text), "-o", str(tmp_path / "run"), "--epochs", "50"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stderr=stderr, env=env)
        deadline = time.monotonic() + 300  # generous: CI machines can be slow and busy
        while not (tmp_path / "run" / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # until the first epoch has ended: training is under way
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=300)
    assert code == 130, log.read_text()
    checkpoint = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    progress = checkpoint["trainer"]["progress"]
    # Saved where it stopped, in the middle of an epoch, with its hidden state, not at the last epoch end.
    assert progress["epoch"] >= 1 and progress["global_step"] == progress["epoch"] * 43 + progress["batch"]
    assert checkpoint["trainer"]["task"]["state"] is not None or progress["batch"] == 0
    assert "interrupted" in log.read_text() and "Traceback" not in log.read_text()

"""nlm used as a careless or unlucky user would: every bad input gets one line and an exit code, and no run is lost.

Each table row is input -> exit code, a phrase of the one stderr line, and what must be on disk afterwards.
Subprocesses (for signals, locks, kill -9, file-size limits) always have a timeout, and a child that must
react to SIGINT gets SIGINT at its default even when the suite itself runs in the background.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, killed_after, tiny_text
from lm_helpers import SOURCE, session_root, train_tiny_lm, write_corpus
from typer.testing import CliRunner

from nlm.autoencode.inference import encode_images, load_autoencoder, write_codes
from nlm.cli import app
from nlm.errors import InputMissingError, OutputExistsError
from nlm.images.data import load_images
from nlm.io.atomic import check_distinct
from nlm.io.text import file_sha256
from nlm.lm.generation import SamplingConfig, evaluate_generation
from nlm.lm.loading import load_language_model
from nlm.lm.scoring import LOGIT_BUDGET, score_ids, score_sentences
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.text.symbols import EOS

runner = CliRunner()
TINY = ["--emb", "16", "--hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "8", "-q"]
TIMEOUT = 300  # generous: CI machines are slow and busy; a hang still fails


def nlm(*args, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_line(result, code: int, phrase: str) -> None:
    assert result.exit_code == code, result.stderr
    assert phrase in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".lock"}


def default_sigint() -> None:
    """preexec_fn: a child started from a background job inherits SIGINT ignored; give it the default back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def child(args: list[str], *, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nlm", *map(str, args)], cwd=cwd, env=env, **kwargs)


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "train.txt").write_text(tiny_text(300, seed=1))
    (tmp_path / "valid.txt").write_text(tiny_text(60, seed=2))
    (tmp_path / "latin1.txt").write_bytes(b"fine line\ncaf\xe9 au lait\n")
    return tmp_path


@pytest.fixture
def finished_run(corpus):
    """A two-epoch run in corpus/run, and a snapshot of its files."""
    result = nlm(
        "train",
        "--train",
        corpus / "train.txt",
        "--valid",
        corpus / "valid.txt",
        "-o",
        corpus / "run",
        "--epochs",
        "2",
        *TINY,
    )
    assert result.exit_code == 0, result.stderr
    return corpus / "run", snapshot(corpus / "run")


# -- bad input to `nlm train`: one line and an exit code, nothing written ---------------------------
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
    one_line(nlm("train", "-o", "run", *TINY, *args), code, message)
    assert not (corpus / "run").exists()


# -- 0. divergence: not only NaN -----------------------------------------------------------------
DIVERGING = [
    (["--lr", "1e30", "--clip", "0"], "training diverged"),  # finite but absurd on some machines, NaN on others
    (["--lr", "1e9"], "training diverged"),
]


@pytest.mark.parametrize("options, phrase", DIVERGING, ids=["lr-1e30-no-clip", "lr-1e9"])
def test_a_diverging_run_stops_with_70_and_leaves_nothing(corpus, options, phrase):
    result = nlm("train", "--train", corpus / "train.txt", "-o", corpus / "new", *TINY, *options)
    one_line(result, 70, phrase)
    assert "nothing of this run was kept" in result.stderr and not (corpus / "new").exists()


# -- 1. no lost data: --force is transactional, a failed start leaves nothing ------------------------
FORCED = [
    (["--train", "latin1.txt"], 65, "latin1.txt:2: not valid UTF-8"),
    (["--train", "train.txt", "--lr", "inf"], 2, "--lr must be a finite number"),
    (["--train", "train.txt", "--lr", "1e9"], 70, "the run already in"),
]


@pytest.mark.parametrize("options, code, phrase", FORCED, ids=["undecodable", "lr-inf", "diverges-early"])
def test_force_keeps_the_old_run_until_the_new_one_has_a_checkpoint(finished_run, monkeypatch, options, code, phrase):
    run, before = finished_run
    monkeypatch.chdir(run.parent)
    one_line(nlm("train", "-o", run, "--force", *TINY, *options), code, phrase)
    assert snapshot(run) == before and sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".lock"]


def test_force_replaces_the_run_once_the_new_one_has_written_a_checkpoint(finished_run, corpus):
    run, before = finished_run
    result = nlm("train", "--train", corpus / "train.txt", "-o", run, "--force", "--epochs", "1", "--seed", "2", *TINY)
    assert result.exit_code == 0, result.stderr
    after = snapshot(run)
    assert set(after) == set(before) and after["best.pt"] != before["best.pt"]
    assert len(after["metrics.jsonl"].splitlines()) == 1  # the new run's metrics only


FAILED_STARTS = [
    (["train", "--train", "missing.txt"], 66, "missing.txt: no such file"),
    (["train", "--train", "latin1.txt"], 65, "latin1.txt:2: not valid UTF-8"),
    (["train", "--train", "train.txt", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["vision", "train", "--data", "missing.npz"], 66, "missing.npz: no such file"),
    (["autoencoder", "train", "--data", "generated:0"], 2, "at least one image"),
]


@pytest.mark.parametrize("args, code, phrase", FAILED_STARTS, ids=lambda v: v if isinstance(v, str) else None)
def test_a_run_that_fails_to_start_leaves_no_folder(corpus, monkeypatch, args, code, phrase):
    monkeypatch.chdir(corpus)
    one_line(nlm(*args, "-o", "runs/new", "-q"), code, phrase)
    assert not (corpus / "runs").exists()


def test_two_runs_in_one_folder_at_once_the_second_gets_73_naming_the_first(corpus):
    run, big = corpus / "busy", corpus / "big.txt"
    big.write_text(tiny_text(3000, seed=3))
    first = child(
        ["train", "--train", big, "-o", run, "--epochs", "100", "--save-every", "1", *TINY],
        cwd=corpus,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    try:
        wait_for(lambda: (run / "last.pt").exists() or first.poll() is not None, "the first run's first checkpoint")
        for args in (
            ["--train", corpus / "train.txt", "-o", run, *TINY],
            ["--train", corpus / "train.txt", "-o", run, "--force", *TINY],
            ["--resume", run],
        ):
            one_line(nlm("train", *args), 73, f"is in use by another nlm process (pid {first.pid})")
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 143, stderr
    assert nlm("train", "--resume", run, "--max-steps", "1", "-q").exit_code == 0  # the lock went with the process


# -- 2. kill -9 and long epochs -------------------------------------------------------------------
class Killed(BaseException):
    """Stands for kill -9: nothing in nlm catches it, so no checkpoint is written on the way out."""


def _train_lm(corpus: Path, output: Path, **options):
    from rich.console import Console

    from nlm.lm.config import LMDataConfig
    from nlm.lm.training import LMJob
    from nlm.models.rnn import RNNConfig
    from nlm.train.config import TrainConfig

    job = LMJob(
        train=str(corpus / "train.txt"),
        valid=str(corpus / "valid.txt"),
        data=LMDataConfig(batch_size=4, bptt=8),
        model=RNNConfig(emb=16, hidden=16, layers=1, dropout=0.3),
    )
    return job.start(output=output, train=TrainConfig(device="cpu", **options), console=Console(quiet=True), quiet=True)


def test_save_every_writes_a_mid_epoch_checkpoint_that_resumes_exactly(corpus, monkeypatch):
    from nlm.lm.task import LMTask
    from nlm.lm.training import LMJob

    straight = _train_lm(corpus, corpus / "straight", epochs=2)
    steps_per_epoch = straight.progress.global_step // 2
    step = LMTask.training_step

    def dies_at_step_17(self, window):  # a crash after the step-15 save and before the next one
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 17:
            raise Killed
        return step(self, window)

    monkeypatch.setattr(LMTask, "training_step", dies_at_step_17)
    with pytest.raises(Killed):
        _train_lm(corpus, corpus / "killed", epochs=2, save_every=5)
    monkeypatch.setattr(LMTask, "training_step", step)
    saved = torch.load(corpus / "killed" / "last.pt", weights_only=True)["trainer"]["progress"]
    assert saved["global_step"] == 15 and 0 < saved["batch"] < steps_per_epoch  # mid-epoch
    from rich.console import Console

    LMJob.resume(run_dir=corpus / "killed", changes={}, console=Console(quiet=True), quiet=True)
    expected = torch.load(corpus / "straight" / "last.pt", weights_only=True)["model"]
    resumed = torch.load(corpus / "killed" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)


def test_resume_removes_temporary_files_and_metrics_logged_after_last_pt(finished_run):
    run, _ = finished_run
    (run / ".best.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    with (run / "metrics.jsonl").open("a") as f:  # a later session logged this, then died before saving last.pt
        f.write(json.dumps({"epoch": 3, "step": 10**6, "loss": 1.0}) + "\n")
    result = nlm("train", "--resume", run, "--epochs", "3")
    assert result.exit_code == 0, result.stderr
    assert "1 metrics line(s) after last.pt dropped" in result.stderr
    assert not list(run.glob(".*.tmp"))
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


# -- 3. resume --------------------------------------------------------------------------------------
def test_a_run_resumes_from_anywhere_and_names_a_missing_file(corpus, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(corpus)
    assert (
        nlm("train", "--train", "train.txt", "--valid", "valid.txt", "-o", "run", *TINY, "--epochs", "1").exit_code == 0
    )
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert nlm("train", "--resume", corpus / "run", "--epochs", "2", "-q").exit_code == 0
    moved = corpus / "moved.txt"
    (corpus / "train.txt").rename(moved)
    one_line(nlm("train", "--resume", corpus / "run", "--epochs", "3"), 66, "pass --train PATH to the same data")
    assert nlm("train", "--resume", corpus / "run", "--train", moved, "--epochs", "3", "-q").exit_code == 0


RESUME_REFUSED = [
    (["--hidden", "64"], 2, "--hidden cannot change when resuming"),
    (["--cell", "gru", "--dropout", "0.5"], 2, "--cell, --dropout cannot change when resuming"),
    (["--train", "valid.txt"], 2, "is not the file"),
    (["--train", "nope.txt"], 66, "nope.txt: no such file"),
    (["-o", "other"], 2, "-o other names another"),
    (["--force"], 2, "--force starts a new run"),
    (["--epochs", "0"], 2, "--epochs must be at least 1"),
]


@pytest.mark.parametrize("options, code, phrase", RESUME_REFUSED, ids=lambda v: v if isinstance(v, str) else None)
def test_resume_refuses_what_cannot_change(finished_run, monkeypatch, options, code, phrase):
    run, before = finished_run
    monkeypatch.chdir(run.parent)
    one_line(nlm("train", "--resume", run, *options), code, phrase)
    assert snapshot(run) == before


def test_resume_applies_and_reports_what_can_change(finished_run):
    run, _ = finished_run
    result = nlm("train", "--resume", run, "--epochs", "3", "--lr", "5")
    assert result.exit_code == 0, result.stderr
    assert "--epochs 2 -> 3" in result.stderr and "--lr 20.0 -> 5.0" in result.stderr
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 3 and last["lr"] == 5.0
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 5.0


# -- 4. write failures and odd streams --------------------------------------------------------------
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_74(corpus):
    limit = 20_000  # bytes: the vocabulary and config fit, a checkpoint does not

    def small_files() -> None:
        default_sigint()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = child(
        [
            "train",
            "--train",
            corpus / "train.txt",
            "-o",
            corpus / "run",
            "--epochs",
            "1",
            "-q",
            "--cache-dir",
            corpus / "cache",
        ],
        cwd=corpus,
        stderr=subprocess.PIPE,
        preexec_fn=small_files,
    )
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 74, stderr
    assert b"cannot write" in stderr and b"File too large" in stderr and b"Traceback" not in stderr
    assert not (corpus / "run").exists()


def test_score_to_a_full_disk_is_one_line_and_74(finished_run, corpus):
    run, _ = finished_run
    with open("/dev/full", "w") as full:
        process = child(["score", "-m", run, corpus / "valid.txt"], cwd=corpus, stdout=full, stderr=subprocess.PIPE)
        _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 74, stderr
    assert stderr.decode().strip() == "nlm: error: cannot write the output: No space left on device"


def test_an_output_folder_under_a_file_is_one_line_and_73(corpus):
    one_line(
        nlm("train", "--train", corpus / "train.txt", "-o", corpus / "train.txt" / "run", *TINY), 73, "cannot create"
    )


# -- 5. messages a user reads -------------------------------------------------------------------------
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
    one_line(nlm(*common, "-o", corpus / "tied", "--tie"), 2, "--tie needs --emb equal to --hidden")


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
    one_line(nlm("train", "--train", "train.txt", "-o", "run", *options), code, phrase)


def test_without_validation_the_progress_says_train_loss(corpus):
    result = nlm("train", "--train", corpus / "train.txt", "-o", corpus / "run", "--epochs", "1", *TINY[:-1])
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
        *TINY[:-1],
    )
    assert built.exit_code == trained.exit_code == 0, trained.stderr
    described = built.stderr.split(": ", 1)[1].strip()
    assert f"vocabulary: {described}" in trained.stderr and "40 pieces," in described


def test_version():
    result = nlm("--version")
    assert result.exit_code == 0 and result.stdout.startswith("nlm 0.")


def test_an_interrupted_image_run_names_its_own_resume_command(tmp_path):
    process = child(
        [
            "vision",
            "train",
            "--data",
            "generated:3000",
            "-o",
            tmp_path / "run",
            "--epochs",
            "200",
            "--batch-size",
            "8",
            "--arch",
            "mlp",
            "--hidden",
            "8",
            "--save-every",
            "1",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    wait_for(lambda: (tmp_path / "run" / "last.pt").exists() or process.poll() is not None, "training to be under way")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert f"`nlm vision train --resume {tmp_path / 'run'}` continues it" in stderr.decode()
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["kind"] == "vision"


def test_ctrl_c_saves_a_mid_epoch_checkpoint_and_exits_130_even_from_a_background_suite(corpus):
    text = corpus / "long.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 3000)
    process = child(
        ["train", "--train", text, "-o", corpus / "run", "--epochs", "50"],
        cwd=corpus,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    wait_for(
        lambda: (corpus / "run" / "metrics.jsonl").exists() or process.poll() is not None, "the first epoch to end"
    )
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    progress = torch.load(corpus / "run" / "last.pt", weights_only=True)["trainer"]["progress"]
    # Saved where it stopped, with the exact position, not at the last epoch's end.
    assert progress["epoch"] >= 1 and progress["global_step"] == progress["epoch"] * 43 + progress["batch"]
    assert b"SIGINT: training stopped and was saved" in stderr and b"Traceback" not in stderr


def test_ctrl_c_in_score_is_a_plain_line_and_130(finished_run, corpus):
    run, _ = finished_run
    process = child(
        ["score", "-m", run, "-u", "-"],
        cwd=corpus,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    with killed_after(process, TIMEOUT):
        process.stdin.write(b"the cat sees the river .\n")
        process.stdin.flush()
        assert process.stdout.readline().count(b"\t") == 3  # it answered; now it waits for more input
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130 and stderr.decode().strip() == "nlm: interrupted"


# == the library's answers (issue 8): long lines, closed stdin, inf/nan options, foreign checkpoints, missing
# files, unwritable caches, full disks, folders and inputs as outputs, NaN images, token counts, empty input ==

SMALL_LM = ["--hidden", "8", "--emb", "8", "--layers", "1", "--batch-size", "4", "--bptt", "8", "--epochs", "1", "-q"]


def invoke(*args, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def nlm_child(*args, preexec_fn=None, timeout: int = 120) -> subprocess.CompletedProcess:
    """`python -m nlm ARGS` in a child process, for what CliRunner cannot fake."""
    return subprocess.run(
        [sys.executable, "-m", "nlm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def says_one_line(stderr: str, *words: str) -> None:
    """stderr is exactly one line, no traceback, holding each of `words`."""
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for w in words:
        assert w in stderr, stderr


def leftovers(folder: Path) -> list[str]:
    """Temporary files of the atomic writer left in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory) -> Path:
    return train_tiny_lm(session_root(tmp_path_factory), "word")


@pytest.fixture(scope="session")
def markov_corpus(tmp_path_factory) -> tuple[Path, Path]:
    return write_corpus(session_root(tmp_path_factory) / "corpus")


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory) -> Path:
    """A one-step autoencoder with a 32-value code."""
    run = tmp_path_factory.mktemp("hostile-ae") / "ae"
    result = invoke(
        "autoencoder",
        "train",
        "--data",
        "generated:64",
        "--max-steps",
        "1",
        "--hidden",
        "32",
        "-o",
        run,
        "--device",
        "cpu",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    return run


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """512 random 28x28 images as a .npz: their codes (64 KiB) outgrow a 16 KiB file-size limit."""
    path = tmp_path_factory.mktemp("hostile-images") / "images.npz"
    np.savez(path, x=np.random.default_rng(0).integers(0, 256, size=(512, 28, 28), dtype=np.uint8))
    return path


# -- 1. a very long line is scored in windows, exactly, in bounded memory ------------------------


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


# -- 2. a closed stdin ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["score", "-m", "RUN", "-"], ["perplexity", "-m", "RUN", "-"], ["vocab", "build", "-o", "OUT"]],
    ids=["score", "perplexity", "vocab build"],
)
def test_a_closed_stdin_is_one_line_and_exit_66(command, lm_run, tmp_path):
    out = tmp_path / "v.txt"
    args = [lm_run if a == "RUN" else out if a == "OUT" else a for a in command]
    done = nlm_child(*args, preexec_fn=lambda: os.close(0))
    assert done.returncode == 66, done.stderr
    says_one_line(done.stderr, "stdin is closed")
    assert not out.exists() and done.stdout == ""


# -- 3. inf and nan as options -------------------------------------------------------------------

NON_FINITE = [
    (["train", *SMALL_LM], "--lr", "inf"),
    (["train", *SMALL_LM], "--lr", "nan"),
    (["train", *SMALL_LM], "--init-range", "inf"),
    (["train", *SMALL_LM], "--dropout", "nan"),
    (["train", *SMALL_LM], "--clip", "inf"),
    (["train", *SMALL_LM], "--max-time", "inf"),
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
    result = invoke(*command, *extra, option, value)
    assert result.exit_code == 2, result.stderr
    says_one_line(result.stderr, f"{option} must be a finite number, not {value}")
    assert not run.exists() and result.stdout == ""


# -- 4. a file that is not a checkpoint ------------------------------------------------------------


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
        result = invoke(*command)
        assert result.exit_code == 65, result.stderr
        says_one_line(result.stderr, f"{path.name} {words}")
    assert not (tmp_path / "MARKER").exists()  # nothing in the file ran
    assert not (tmp_path / "codes.npy").exists()


# -- 5. a missing file named as such -------------------------------------------------------------


def test_a_missing_training_file_with_a_vocabulary_is_named(markov_corpus, tmp_path):
    assert invoke("vocab", "build", markov_corpus[0], "-o", tmp_path / "v.txt").exit_code == 0
    result = invoke(
        "train", "--train", tmp_path / "gone.txt", "--vocab", tmp_path / "v.txt", "-o", tmp_path / "run", *SMALL_LM
    )
    assert result.exit_code == 66, result.stderr
    says_one_line(result.stderr, "gone.txt: no such file")
    with pytest.raises(InputMissingError, match="gone.txt: no such file"):
        file_sha256(tmp_path / "gone.txt")


# -- 6. a corpus cache nlm cannot write ------------------------------------------------------------


def test_an_unwritable_cache_names_the_folder_and_the_way_out(lm_run, markov_corpus, tmp_path):
    blocked = tmp_path / "a-file" / "cache"  # under a regular file: ENOTDIR, which root cannot override
    (tmp_path / "a-file").write_text("")
    result = invoke("perplexity", "-m", lm_run, markov_corpus[1], env={"NLM_CACHE_DIR": str(blocked)})
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"corpus cache {blocked}", "--cache-dir", "NLM_CACHE_DIR")
    result = invoke(
        "train",
        "--train",
        markov_corpus[0],
        "-o",
        tmp_path / "run",
        "--cache-dir",
        blocked,
        "--device",
        "cpu",
        *SMALL_LM,
    )
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"corpus cache {blocked}", "--cache-dir")
    assert (tmp_path / "a-file").read_text() == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_names_the_folder(lm_run, markov_corpus, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        result = invoke("perplexity", "-m", lm_run, markov_corpus[1], env={"NLM_CACHE_DIR": str(cache)})
    finally:
        cache.chmod(0o755)
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"corpus cache {cache}", "NLM_CACHE_DIR")
    assert list(cache.iterdir()) == []


# -- 7. full disks and file-size limits ------------------------------------------------------------


@pytest.fixture
def full_device_link(tmp_path) -> Path:
    """A symbolic link to /dev/full: nlm must write through it (ENOSPC), never replace the link or the device."""
    if not Path("/dev/full").exists() or not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("no /dev/full here")
    link = tmp_path / "full.out"
    link.symlink_to("/dev/full")
    yield link
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("command", ["vocab build", "autoencoder encode", "autoencoder reconstruct"])
def test_a_full_disk_is_one_line_and_exit_74(command, full_device_link, markov_corpus, ae_run):
    args = {
        "vocab build": ["vocab", "build", markov_corpus[0]],
        "autoencoder encode": ["autoencoder", "encode", "-m", ae_run, "--data", "generated:8"],
        "autoencoder reconstruct": ["autoencoder", "reconstruct", "-m", ae_run, "--data", "generated:8"],
    }[command]
    result = invoke(*args, "-o", full_device_link)
    assert result.exit_code == 74, result.stderr
    says_one_line(result.stderr, f"cannot write {full_device_link}", "No space left on device")
    assert leftovers(full_device_link.parent) == []


def test_a_device_output_is_written_through_not_replaced(markov_corpus, tmp_path):
    link = tmp_path / "null.out"
    link.symlink_to(os.devnull)
    result = invoke("vocab", "build", markov_corpus[0], "-o", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and stat.S_ISCHR(os.stat(os.devnull).st_mode) and leftovers(tmp_path) == []


def _limit_file_size(size: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_file_size_limit_keeps_the_previous_vocabulary(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"w{i:05d} w{i + 1:05d}\n" for i in range(0, 30_000, 2)))  # a 270 KB vocabulary
    out = tmp_path / "v.txt"
    out.write_bytes(b"<pad>\t0\nthe previous vocabulary\t1\n")
    before = out.read_bytes()
    done = nlm_child("vocab", "build", big, "-o", out, preexec_fn=_limit_file_size(64 << 10))
    assert done.returncode == 74, done.stderr
    says_one_line(done.stderr, f"cannot write {out}", "File too large")
    assert out.read_bytes() == before and leftovers(tmp_path) == []


def test_a_file_size_limit_keeps_the_previous_codes(ae_run, images, tmp_path):
    out = tmp_path / "codes.npy"
    out.write_bytes(b"the previous codes")
    done = nlm_child(
        "autoencoder",
        "encode",
        "-m",
        ae_run,
        "--data",
        images,
        "-o",
        out,
        "--device",
        "cpu",
        preexec_fn=_limit_file_size(16 << 10),
    )
    assert done.returncode == 74, done.stderr
    says_one_line(done.stderr, f"cannot write {out}", "File too large")
    assert out.read_bytes() == b"the previous codes" and leftovers(tmp_path) == []


# -- 8. a folder as the output file ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["encode", "reconstruct"])
def test_a_folder_as_the_output_is_one_line_and_exit_73(command, ae_run, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    result = invoke("autoencoder", command, "-m", ae_run, "--data", "generated:8", "-o", folder)
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"{folder} is a folder")
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "kept"


# -- 9. an output that is one of the inputs ----------------------------------------------------------


def test_vocab_build_refuses_to_overwrite_its_input(markov_corpus, tmp_path):
    train = tmp_path / "train.txt"
    train.write_bytes(markov_corpus[0].read_bytes())
    (tmp_path / "hard-link.txt").hardlink_to(train)
    (tmp_path / "soft-link.txt").symlink_to(train)
    for output, extra in [
        (train, []),
        (tmp_path / "." / "train.txt", []),
        (tmp_path / "hard-link.txt", []),
        (tmp_path / "soft-link.txt", []),
        (tmp_path / "valid.txt", ["--check", tmp_path / "valid.txt"]),
    ]:
        if extra:
            output.write_text("the validation text\n")
        before = output.read_bytes()
        result = invoke("vocab", "build", train, "-o", output, *extra)
        assert result.exit_code == 73, (output, result.stderr)
        says_one_line(result.stderr, "is also an input")
        assert output.read_bytes() == before
    assert train.read_bytes() == markov_corpus[0].read_bytes()


def test_check_distinct_compares_files_not_names(tmp_path, monkeypatch):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    for output, inputs in [
        (a, [b]),
        ("-", ["-", a]),
        (None, [a]),
        (a, [None, "-", "generated:10"]),
        (tmp_path / "new.txt", [a]),
        (os.devnull, [os.devnull]),
    ]:
        check_distinct(output, inputs)  # distinct: no error
    monkeypatch.chdir(tmp_path)
    for output, inputs in [(a, [b, a]), ("a.txt", [a]), (a, ["./a.txt"]), (tmp_path / "new.txt", ["new.txt"])]:
        with pytest.raises(OutputExistsError, match="is also an input"):
            check_distinct(output, inputs)


def test_codes_and_hypotheses_never_overwrite_an_input(ae_run, lm_run, images, tmp_path):
    loaded = load_autoencoder(ae_run)
    codes = encode_images(loaded, load_images(str(images)))
    data_before, model_before = images.read_bytes(), loaded.path.read_bytes()
    for target in (images, loaded.path):
        with pytest.raises(OutputExistsError, match="is also an input"):
            write_codes(codes, target, sources=[images, loaded.path])
    assert images.read_bytes() == data_before and loaded.path.read_bytes() == model_before
    refs = tmp_path / "refs.txt"
    refs.write_text("".join(s + "\n" for s in SOURCE.sample(3, seed=1)))
    lines = refs.read_text().splitlines()
    with pytest.raises(OutputExistsError, match="refs.txt is also an input"):
        evaluate_generation(
            load_language_model(lm_run),
            lines,
            lines,
            config=SamplingConfig(greedy=True, max_tokens=3),
            names=(str(refs), str(refs)),
            hyps=refs,
        )
    assert refs.read_text().splitlines() == lines


@pytest.mark.parametrize("case", ["encode -o DATA", "encode -o MODEL", "reconstruct -o MODEL", "evaluate --hyps REFS"])
def test_the_cli_refuses_an_output_that_is_an_input(case, ae_run, lm_run, images, tmp_path):
    refs = tmp_path / "refs.txt"
    refs.write_text("".join(s + "\n" for s in SOURCE.sample(3, seed=1)))
    ae_run, images = shutil.copytree(ae_run, tmp_path / "ae"), Path(shutil.copy(images, tmp_path))  # copies to spoil
    model = ae_run / "best.pt"
    target, args = {
        "encode -o DATA": (images, ["autoencoder", "encode", "-m", ae_run, "--data", images, "-o", images]),
        "encode -o MODEL": (model, ["autoencoder", "encode", "-m", ae_run, "--data", images, "-o", model]),
        "reconstruct -o MODEL": (model, ["autoencoder", "reconstruct", "-m", ae_run, "--data", images, "-o", model]),
        "evaluate --hyps REFS": (refs, ["evaluate", "-m", lm_run, "--prompts", refs, "--refs", refs, "--hyps", refs]),
    }[case]
    before = target.read_bytes()
    result = invoke(*args)
    assert target.read_bytes() == before
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, "is also an input")


# -- 10. images that hold NaN ----------------------------------------------------------------------


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
    result = invoke(*args, "--data", data)
    assert result.exit_code == 65, result.stderr
    says_one_line(result.stderr, "nan.npz: x holds NaN or infinite values (image 3 is the first)")
    assert not (tmp_path / "codes.npy").exists()


# -- 11. every token count says what it counts -------------------------------------------------------


def test_token_counts_say_what_they_count_and_add_up(lm_run, markov_corpus, tmp_path):
    train, valid = markov_corpus
    lines = valid.read_text().splitlines()
    words = sum(len(line.split()) for line in lines)
    check = invoke("vocab", "build", train, "-o", tmp_path / "v.txt", "--check", valid)
    assert check.exit_code == 0, check.stderr
    assert f"{words:,} tokens without <eos> ({words + len(lines):,} with one <eos> per line" in check.stderr
    stream = invoke("perplexity", "-m", lm_run, valid)
    assert stream.exit_code == 0, stream.stderr
    text_tokens, rows = words + len(lines), 4  # the tiny model's eval batch size
    predicted = rows * (text_tokens // rows - 1)
    tail = text_tokens % rows
    assert f"{predicted:,} predicted tokens" in stream.stdout
    assert f"{predicted:,} of the text's {text_tokens:,} tokens (one <eos> per line) predicted" in stream.stdout
    assert f"the first token of each of the {rows} rows" in stream.stdout
    assert (f"the {tail}-token tail that fills no row" in stream.stdout) == (tail > 0)
    sentence = invoke("perplexity", "-m", lm_run, valid, "--protocol", "sentence")
    assert (
        f"{text_tokens:,} predicted tokens" in sentence.stdout
        and "every token predicted, one <eos> per line" in sentence.stdout
    )


# -- 12. an empty input: nothing to score ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["score"], ["perplexity"], ["perplexity", "--protocol", "sentence"]],
    ids=["score", "perplexity stream", "perplexity sentence"],
)
def test_an_empty_input_is_an_error_and_empty_lines_are_sentences(command, lm_run, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = invoke(command[0], "-m", lm_run, empty, *command[1:])
    assert result.exit_code == 65, result.stderr
    says_one_line(result.stderr, "is empty: nothing to score")
    assert "nan" not in result.stdout + result.stderr
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n\n")
    result = invoke(command[0], "-m", lm_run, blank, *command[1:])
    assert result.exit_code == 0, result.stderr
    assert "nan" not in result.stdout + result.stderr
    if command == ["score"]:
        assert [row.split("\t")[1:3] for row in result.stdout.splitlines()] == [["1", "0"]] * 3


# -- 6. NT-ASGD, fine-tuning and recipes ----------------------------------------------------------------
AVERAGING_REFUSED = [
    (["--optimizer", "ntasgd", "--schedule", "plateau"], 2, "--schedule plateau would also cut the rate then"),
    (["--optimizer", "ntasgd", "--momentum", "0.9"], 2, "--optimizer ntasgd uses no momentum"),
    (["--optimizer", "ntasgd", "--nonmono", "0"], 2, "--nonmono must be at least 1"),
    (["--schedule", "steps"], 2, "--schedule steps needs --milestones"),
    (["--milestones", "3,5"], 2, "--milestones applies to --schedule steps"),
    (["--schedule", "steps", "--milestones", "5,3"], 2, "--milestones must be increasing epochs >= 1, not 5,3"),
    (["--finetune"], 2, "--finetune continues a finished NT-ASGD run: give it with --resume"),
    (
        ["--recipe", "awd-lstm"],
        2,
        "--recipe 'awd-lstm' is not a recipe; choose one of example, ptb-25min, zaremba-small",
    ),
]


@pytest.mark.parametrize("options, code, phrase", AVERAGING_REFUSED, ids=lambda v: v if isinstance(v, str) else None)
def test_averaging_options_that_cannot_apply_are_one_line_and_2(corpus, monkeypatch, options, code, phrase):
    monkeypatch.chdir(corpus)
    one_line(nlm("train", "--train", "train.txt", "-o", "run", *TINY, *options), code, phrase)
    assert not (corpus / "run").exists()


@pytest.mark.parametrize(
    "options, phrase",
    [
        (["--finetune"], "--finetune restarts the averaging of an NT-ASGD run (--optimizer ntasgd); this run used sgd"),
        (
            ["--recipe", "awd-ptb"],
            "--recipe starts a new run from a preset; a resumed run keeps the configuration it has",
        ),
    ],
    ids=["finetune-sgd", "recipe"],
)
def test_resume_refuses_finetuning_another_optimizer_and_a_recipe(finished_run, options, phrase):
    run, before = finished_run
    one_line(nlm("train", "--resume", run, *options), 2, phrase)
    assert snapshot(run) == before


def test_finetuning_a_run_without_best_pt_is_one_line_and_66(corpus, monkeypatch):
    from nlm.lm.task import LMTask

    step = LMTask.training_step

    def dies_at_step_3(self, window):  # after the step-2 save, long before the first evaluation
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 3:
            raise Killed
        return step(self, window)

    monkeypatch.setattr(LMTask, "training_step", dies_at_step_3)
    with pytest.raises(Killed):
        _train_lm(corpus, corpus / "killed", optimizer="ntasgd", lr=1.0, save_every=2)
    monkeypatch.setattr(LMTask, "training_step", step)
    before = snapshot(corpus / "killed")
    one_line(
        nlm("train", "--resume", corpus / "killed", "--finetune"),
        66,
        "has no best.pt, the weights --finetune starts from",
    )
    assert snapshot(corpus / "killed") == before

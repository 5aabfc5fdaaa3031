"""nlm used as a careless or unlucky user would: every bad input gets one line and an exit code, and no run is lost.

Each table row is input -> exit code, a phrase of the one stderr line, and what must be on disk afterwards.
Subprocesses (for signals, locks, kill -9, file-size limits) always have a timeout, and a child that must
react to SIGINT gets SIGINT at its default even when the suite itself runs in the background.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_text
from typer.testing import CliRunner

from nlm.cli import app

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
    result = nlm("train", "--train", corpus / "train.txt", "--valid", corpus / "valid.txt", "-o", corpus / "run", "--epochs", "2", *TINY)
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
    first = child(["train", "--train", big, "-o", run, "--epochs", "100", "--save-every", "1", *TINY],
                  cwd=corpus, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    try:
        wait_for(lambda: (run / "last.pt").exists() or first.poll() is not None, "the first run's first checkpoint")
        for args in (["--train", corpus / "train.txt", "-o", run, *TINY], ["--train", corpus / "train.txt", "-o", run, "--force", *TINY],
                     ["--resume", run]):
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
    from nlm.lm.training import LMJob, train_language_model
    from nlm.models.rnn import RNNConfig
    from nlm.train.config import TrainConfig

    job = LMJob(train=str(corpus / "train.txt"), valid=str(corpus / "valid.txt"), data=LMDataConfig(batch_size=4, bptt=8),
                model=RNNConfig(emb=16, hidden=16, layers=1, dropout=0.3))
    return train_language_model(job=job, output=output, train=TrainConfig(device="cpu", **options), console=Console(quiet=True), quiet=True)


def test_save_every_writes_a_mid_epoch_checkpoint_that_resumes_exactly(corpus, monkeypatch):
    from nlm.lm.task import LMTask
    from nlm.lm.training import resume_language_model

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

    resume_language_model(run_dir=corpus / "killed", changes={}, console=Console(quiet=True), quiet=True)
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
    assert nlm("train", "--train", "train.txt", "--valid", "valid.txt", "-o", "run", *TINY, "--epochs", "1").exit_code == 0
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
    (["-o", "other"], 2, "-o and --force start a new run"),
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

    process = child(["train", "--train", corpus / "train.txt", "-o", corpus / "run", "--epochs", "1", "-q",
                     "--cache-dir", corpus / "cache"], cwd=corpus, stderr=subprocess.PIPE, preexec_fn=small_files)
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
    one_line(nlm("train", "--train", corpus / "train.txt", "-o", corpus / "train.txt" / "run", *TINY), 73, "cannot create")


# -- 5. messages a user reads -------------------------------------------------------------------------
def test_unequal_sizes_train_untied_unless_tying_is_asked_for(corpus):
    common = ["train", "--train", corpus / "train.txt", "--emb", "8", "--hidden", "16", "--layers", "1", "--epochs", "1", "-q"]
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
    built = nlm("vocab", "build", corpus / "train.txt", "-o", corpus / "v.model", "--level", "bpe", "--vocab-size", "40")
    trained = nlm("train", "--train", corpus / "train.txt", "-o", corpus / "run", "--level", "bpe", "--vocab-size", "40",
                  "--epochs", "1", *TINY[:-1])
    assert built.exit_code == trained.exit_code == 0, trained.stderr
    described = built.stderr.split(": ", 1)[1].strip()
    assert f"vocabulary: {described}" in trained.stderr and "40 pieces," in described


def test_version():
    result = nlm("--version")
    assert result.exit_code == 0 and result.stdout.startswith("nlm 0.")


def test_an_interrupted_image_run_names_its_own_resume_command(tmp_path):
    process = child(["vision", "train", "--data", "generated:3000", "-o", tmp_path / "run", "--epochs", "200", "--batch-size", "8",
                     "--arch", "mlp", "--hidden", "8", "--save-every", "1"], cwd=tmp_path, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    wait_for(lambda: (tmp_path / "run" / "last.pt").exists() or process.poll() is not None, "training to be under way")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert f"`nlm vision train --resume {tmp_path / 'run'}` continues it" in stderr.decode()
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["kind"] == "vision"


def test_ctrl_c_saves_a_mid_epoch_checkpoint_and_exits_130_even_from_a_background_suite(corpus):
    text = corpus / "long.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 3000)
    process = child(["train", "--train", text, "-o", corpus / "run", "--epochs", "50"], cwd=corpus, stderr=subprocess.PIPE,
                    preexec_fn=default_sigint)
    wait_for(lambda: (corpus / "run" / "metrics.jsonl").exists() or process.poll() is not None, "the first epoch to end")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    progress = torch.load(corpus / "run" / "last.pt", weights_only=True)["trainer"]["progress"]
    # Saved where it stopped, with the exact position, not at the last epoch's end.
    assert progress["epoch"] >= 1 and progress["global_step"] == progress["epoch"] * 43 + progress["batch"]
    assert b"SIGINT: training stopped and was saved" in stderr and b"Traceback" not in stderr


def test_ctrl_c_in_score_is_a_plain_line_and_130(finished_run, corpus):
    run, _ = finished_run
    process = child(["score", "-m", run, "-u", "-"], cwd=corpus, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, preexec_fn=default_sigint)
    process.stdin.write(b"the cat sees the river .\n")
    process.stdin.flush()
    assert process.stdout.readline().count(b"\t") == 3  # it answered; now it waits for more input
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130 and stderr.decode().strip() == "nlm: interrupted"


# -- 6. NT-ASGD, fine-tuning and recipes ----------------------------------------------------------------
AVERAGING_REFUSED = [
    (["--optimizer", "ntasgd", "--schedule", "plateau"], 2, "--schedule plateau would also cut the rate then"),
    (["--optimizer", "ntasgd", "--momentum", "0.9"], 2, "--optimizer ntasgd uses no momentum"),
    (["--optimizer", "ntasgd", "--nonmono", "0"], 2, "--nonmono must be at least 1"),
    (["--schedule", "steps"], 2, "--schedule steps needs --milestones"),
    (["--milestones", "3,5"], 2, "--milestones applies to --schedule steps"),
    (["--schedule", "steps", "--milestones", "5,3"], 2, "--milestones must be increasing epochs >= 1, not 5,3"),
    (["--finetune"], 2, "--finetune continues a finished NT-ASGD run: give it with --resume"),
    (["--recipe", "awd-lstm"], 2, "--recipe 'awd-lstm' is not a recipe; choose one of example, zaremba-small"),
]


@pytest.mark.parametrize("options, code, phrase", AVERAGING_REFUSED, ids=lambda v: v if isinstance(v, str) else None)
def test_averaging_options_that_cannot_apply_are_one_line_and_2(corpus, monkeypatch, options, code, phrase):
    monkeypatch.chdir(corpus)
    one_line(nlm("train", "--train", "train.txt", "-o", "run", *TINY, *options), code, phrase)
    assert not (corpus / "run").exists()


@pytest.mark.parametrize("options, phrase", [
    (["--finetune"], "--finetune restarts the averaging of an NT-ASGD run (--optimizer ntasgd); this run used sgd"),
    (["--recipe", "awd-ptb"], "--recipe starts a new run from a preset; a resumed run keeps the configuration it has"),
], ids=["finetune-sgd", "recipe"])
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
    one_line(nlm("train", "--resume", corpus / "killed", "--finetune"), 66, "has no best.pt, the weights --finetune starts from")
    assert snapshot(corpus / "killed") == before

"""Run folders as a careless or unlucky user meets them: nothing lost, one line and an exit code for each refusal.

Each table row is input -> exit code, a phrase of the one stderr line, and what must be on disk afterwards:
divergence, a transactional --force, failed starts, two runs in one folder, mid-epoch saves that resume exactly,
what a resume may and may not change, NT-ASGD and fine-tuning, and a model or a step too large for memory.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from cli_helpers import (
    TIMEOUT,
    TINY_LM,
    default_sigint,
    nlm,
    nlm_popen,
    nlm_process,
    one_line_error,
    says_one_line,
    snapshot,
    wait_for,
)
from conftest import tiny_text

from nlm.models.rnn import RNNConfig

DIVERGING = [
    (["--lr", "1e30", "--clip", "0"], "training diverged"),  # finite but absurd on some machines, NaN on others
    (["--lr", "1e9"], "training diverged"),
]


@pytest.mark.parametrize("options, phrase", DIVERGING, ids=["lr-1e30-no-clip", "lr-1e9"])
def test_a_diverging_run_stops_with_70_and_leaves_nothing(corpus, options, phrase):
    result = nlm("train", "--train", corpus / "train.txt", "-o", corpus / "new", *TINY_LM, *options)
    one_line_error(result, 70, phrase)
    assert "nothing of this run was kept" in result.stderr and not (corpus / "new").exists()


FORCED = [
    (["--train", "latin1.txt"], 65, "latin1.txt:2: not valid UTF-8"),
    (["--train", "train.txt", "--lr", "inf"], 2, "--lr must be a finite number"),
    (["--train", "train.txt", "--lr", "1e9"], 70, "the run already in"),
]


@pytest.mark.parametrize("options, code, phrase", FORCED, ids=["undecodable", "lr-inf", "diverges-early"])
def test_force_keeps_the_old_run_until_the_new_one_has_a_checkpoint(finished_run, monkeypatch, options, code, phrase):
    run, before = finished_run
    monkeypatch.chdir(run.parent)
    one_line_error(nlm("train", "-o", run, "--force", *TINY_LM, *options), code, phrase)
    assert snapshot(run) == before and sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".lock"]


def test_force_replaces_the_run_once_the_new_one_has_written_a_checkpoint(finished_run, corpus):
    run, before = finished_run
    result = nlm(
        "train", "--train", corpus / "train.txt", "-o", run, "--force", "--epochs", "1", "--seed", "2", *TINY_LM
    )
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
    one_line_error(nlm(*args, "-o", "runs/new", "-q"), code, phrase)
    assert not (corpus / "runs").exists()


def test_two_runs_in_one_folder_at_once_the_second_gets_73_naming_the_first(corpus):
    run, big = corpus / "busy", corpus / "big.txt"
    big.write_text(tiny_text(3000, seed=3))
    first = nlm_popen(
        "train",
        "--train",
        big,
        "-o",
        run,
        "--epochs",
        "100",
        "--save-every",
        "1",
        *TINY_LM,
        cwd=corpus,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    try:
        wait_for(lambda: (run / "last.pt").exists() or first.poll() is not None, "the first run's first checkpoint")
        for args in (
            ["--train", corpus / "train.txt", "-o", run, *TINY_LM],
            ["--train", corpus / "train.txt", "-o", run, "--force", *TINY_LM],
            ["--resume", run],
        ):
            one_line_error(nlm("train", *args), 73, f"is in use by another nlm process (pid {first.pid})")
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 143, stderr
    assert nlm("train", "--resume", run, "--max-steps", "1", "-q").exit_code == 0  # the lock went with the process


class Killed(BaseException):
    """Stands for kill -9: nothing in nlm catches it, so no checkpoint is written on the way out."""


def _train_lm(corpus: Path, output: Path, **options):
    from rich.console import Console

    from nlm.lm.config import LMDataConfig
    from nlm.lm.training import LMJob
    from nlm.train.config import TrainConfig

    job = LMJob(
        train=str(corpus / "train.txt"),
        valid=str(corpus / "valid.txt"),
        data=LMDataConfig(batch_size=4, bptt=8),
        model=RNNConfig(emb=16, hidden=16, layers=1, dropout=0.3),
    )
    return job.start(output=output, train=TrainConfig(device="cpu", **options), console=Console(quiet=True), quiet=True)


def _killed_at_step(monkeypatch, corpus: Path, step: int, **options) -> None:
    """Train into corpus/killed until a crash at `step`: a kill -9 after the last save before it."""
    from nlm.lm.task import LMTask

    training_step = LMTask.training_step

    def dies(self, window):
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == step:
            raise Killed
        return training_step(self, window)

    monkeypatch.setattr(LMTask, "training_step", dies)
    with pytest.raises(Killed):
        _train_lm(corpus, corpus / "killed", **options)
    monkeypatch.setattr(LMTask, "training_step", training_step)


def test_save_every_writes_a_mid_epoch_checkpoint_that_resumes_exactly(corpus, monkeypatch):
    from nlm.lm.training import LMJob

    straight = _train_lm(corpus, corpus / "straight", epochs=2)
    steps_per_epoch = straight.progress.global_step // 2
    _killed_at_step(monkeypatch, corpus, 17, epochs=2, save_every=5)  # after the step-15 save, before the next
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


def test_a_run_resumes_from_anywhere_and_names_a_missing_file(corpus, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(corpus)
    assert (
        nlm("train", "--train", "train.txt", "--valid", "valid.txt", "-o", "run", *TINY_LM, "--epochs", "1").exit_code
        == 0
    )
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert nlm("train", "--resume", corpus / "run", "--epochs", "2", "-q").exit_code == 0
    moved = corpus / "moved.txt"
    (corpus / "train.txt").rename(moved)
    one_line_error(nlm("train", "--resume", corpus / "run", "--epochs", "3"), 66, "pass --train PATH to the same data")
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
    one_line_error(nlm("train", "--resume", run, *options), code, phrase)
    assert snapshot(run) == before


def test_resume_applies_and_reports_what_can_change(finished_run):
    run, _ = finished_run
    result = nlm("train", "--resume", run, "--epochs", "3", "--lr", "5")
    assert result.exit_code == 0, result.stderr
    assert "--epochs 2 -> 3" in result.stderr and "--lr 20.0 -> 5.0" in result.stderr
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 3 and last["lr"] == 5.0
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 5.0


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
    one_line_error(nlm("train", "--train", "train.txt", "-o", "run", *TINY_LM, *options), code, phrase)
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
    one_line_error(nlm("train", "--resume", run, *options), 2, phrase)
    assert snapshot(run) == before


def test_finetuning_a_run_without_best_pt_is_one_line_and_66(corpus, monkeypatch):
    # after the step-2 save, long before the first evaluation
    _killed_at_step(monkeypatch, corpus, 3, optimizer="ntasgd", lr=1.0, save_every=2)
    before = snapshot(corpus / "killed")
    one_line_error(
        nlm("train", "--resume", corpus / "killed", "--finetune"),
        66,
        "has no best.pt, the weights --finetune starts from",
    )
    assert snapshot(corpus / "killed") == before


def test_the_starting_command_with_resume_added_continues_the_run(corpus):
    """`nlm train ... -o RUN`, then the same line with `--resume RUN` (and a longer budget) added."""
    run = corpus / "run"
    line = ["train", "--train", corpus / "train.txt", "--valid", corpus / "valid.txt", "-o", run, *TINY_LM]
    assert nlm(*line, "--max-steps", "5").exit_code == 0
    result = nlm(*line, "--max-steps", "10", "--resume", run)
    assert result.exit_code == 0, result.stderr
    assert torch.load(run / "last.pt", weights_only=True)["trainer"]["progress"]["global_step"] == 10
    assert json.loads((run / "config.json").read_text())["train"]["max_steps"] == 10


# -- a model, or a training step, too large for the memory ---------------------------------------------------
TOO_LARGE = [
    (["train", "--train", "train.txt", "-o", "run", "--hidden", "2000000"], "64,000,"),
    (["vision", "train", "--data", "generated:20", "-o", "run", "--arch", "mlp", "--hidden", "2000000,2000000"], "4,0"),
    (["autoencoder", "train", "--data", "generated:20", "-o", "run", "--kind", "sparse", "--hidden", "2000000000"], ""),
    (["diagnose", "gradients", "train.txt", "--cell", "lstm", "--hidden", "2000000", "--lags", "5"], "32,000,"),
]


@pytest.mark.parametrize("args, count", TOO_LARGE, ids=[" ".join(a[:2]) for a, _ in TOO_LARGE])
def test_a_model_larger_than_the_memory_is_one_line_with_its_size(corpus, monkeypatch, args, count):
    monkeypatch.chdir(corpus)
    result = nlm(*args, "-q") if args[0] != "diagnose" else nlm(*args)
    one_line_error(result, 69, f"the model has {count}")
    assert " parameters (" in result.stderr and "TB), more than the " in result.stderr
    assert result.stderr.rstrip().endswith("of memory on this machine; choose smaller sizes")
    assert not (corpus / "run").exists()


# The address space capped a little above what nlm has mapped once imported: allocations past the cap fail as they
# would on a full machine (the model of --hidden 1200 fits; a training step does not).
CPU_MEMORY_CAP = """
import resource, torch
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + (300 << 20), size + (300 << 20)))
"""
# 40 MB of the GPU for nlm's tensors: a 1000-wide LSTM's weights (32 MB) fit, their gradients do not.
CUDA_MEMORY_CAP = "import torch; torch.cuda.set_per_process_memory_fraction((40 << 20) / torch.cuda.mem_get_info()[1])"
LARGE_LM = ["--layers", "1", "--batch-size", "4", "--bptt", "5", "--optimizer", "adam", "--max-steps", "3", "-q"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to cap the address space")
def test_running_out_of_memory_while_training_is_one_line_and_keeps_nothing_half_made(corpus):
    args = ["train", "--train", corpus / "train.txt", "-o", corpus / "run", "--hidden", "1200", *LARGE_LM]
    done = nlm_process(*args, setup=CPU_MEMORY_CAP)
    assert done.returncode == 69, done.stderr
    says_one_line(done.stderr, "out of memory on the CPU while training in", "failed); no checkpoint had been written")
    assert not (corpus / "run").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_out_of_memory_while_training_is_one_line(corpus):
    args = ["train", "--train", corpus / "train.txt", "-o", corpus / "run", "--hidden", "1000", *LARGE_LM]
    done = nlm_process(*args, "--device", "cuda", setup=CUDA_MEMORY_CAP)
    assert done.returncode == 69, done.stderr
    says_one_line(done.stderr, "out of memory on the GPU while training in", "nothing of this run was kept")
    assert not (corpus / "run").exists()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to cap the address space")
def test_running_out_of_memory_in_any_command_is_one_line(lm_run):
    done = nlm_process(
        "generate", "-m", lm_run, "--num", 10_000_000, "--max-tokens", 2, "--greedy", setup=CPU_MEMORY_CAP
    )
    assert done.returncode == 69 and done.stdout == "", done.stderr
    says_one_line(done.stderr, "out of memory on the CPU (an allocation of", "failed); try a smaller batch")

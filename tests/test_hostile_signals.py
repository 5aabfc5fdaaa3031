"""Ctrl-C and SIGTERM: training saves and says how to resume, scoring stops with one plain line, exit 128 + signal.

Every child process has a timeout and gets SIGINT at its default, even when the suite runs in the background.
"""

from __future__ import annotations

import signal
import subprocess

import torch
from cli_helpers import (
    TIMEOUT,
    default_sigint,
    nlm_popen,
    wait_for,
)
from conftest import killed_after


def test_an_interrupted_image_run_names_its_own_resume_command(tmp_path):
    process = nlm_popen(
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
    process = nlm_popen(
        "train",
        "--train",
        text,
        "-o",
        corpus / "run",
        "--epochs",
        "50",
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
    process = nlm_popen(
        "score",
        "-m",
        run,
        "-u",
        "-",
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

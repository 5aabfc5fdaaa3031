"""Data-parallel training on the CPU with gloo: two processes take the steps one process takes with the same
--batch-size (uneven blocks included), rank 0 alone writes and prints, a signal to torchrun stops every rank and
saves, a resume continues exactly on as many processes and is refused on another number, and a checkpoint trained
on two processes scores on one.

Most runs fork two ranks from this process (torch already imported: a second each) with the environment torchrun
gives them; two tests start the real torchrun, as a user would.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import nlm
from conftest import write_grammar_corpus
from distributed_helpers import TIMEOUT, ranks, torchrun

from nlm.train.shard import Shard

LM = [
    "--emb",
    "16",
    "--hidden",
    "16",
    "--layers",
    "1",
    "--dropout",
    "0",
    "--batch-size",
    "5",
    "--bptt",
    "8",
    "--optimizer",
    "adam",
    "--lr",
    "0.01",
    "--device",
    "cpu",
    "-q",
]
MLP = ["--arch", "mlp", "--hidden", "16", "--batch-size", "25", "--optimizer", "adam", "--device", "cpu", "-q"]


def alone_and_under_torchrun(tmp_path: Path, args: list) -> tuple[Path, Path]:
    """`nlm ARGS -o RUN` in this process and under the real torchrun with two processes: the two run folders."""
    launcher = torchrun(*args, "-o", tmp_path / "two")
    try:
        _, stderr = launcher.communicate(timeout=TIMEOUT)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, stderr
    alone = nlm(*args, "-o", tmp_path / "one")
    assert alone.exit_code == 0, alone.stderr
    return tmp_path / "one", tmp_path / "two"


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=True)["model"]


def largest_difference(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def step_of(run: Path) -> int:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=True)["trainer"]["progress"]["global_step"]


def test_blocks_cover_every_batch_once_and_weights_restore_the_batch_mean():
    for world in (1, 2, 3, 4):
        for n in range(world, 12):
            blocks = [list(range(n))[Shard(r, world).block(n)] for r in range(world)]
            assert sum(blocks, []) == list(range(n)) and max(map(len, blocks)) - min(map(len, blocks)) <= 1
            losses = torch.rand(n, dtype=torch.float64)
            # what DDP differentiates: the mean over ranks of each rank's weighted mean loss
            ranks_mean = (
                sum(
                    Shard(r, world).weight(losses[Shard(r, world).block(n)].mean(), len(b), n)
                    for r, b in enumerate(blocks)
                )
                / world
            )
            assert ranks_mean.item() == pytest.approx(losses.mean().item(), rel=1e-12)


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
    """{variant: (run on one process, run on two)}, 20 steps each with a global batch of 5 lines or rows
    (blocks of 2 and 3)."""
    root = tmp_path_factory.mktemp("ddp-lm")
    train, valid = write_grammar_corpus(root, 300)
    variants = {
        "stream": [],
        "sentence": ["--mode", "sentence"],
        "adaptive": ["--softmax", "adaptive", "--cutoffs", "10,20"],
    }
    runs = {}
    for name, options in variants.items():
        args = ["train", "--train", train, "--valid", valid, *LM, *options, "--max-steps", "20"]
        one = nlm(*args, "-o", root / f"{name}-1")
        assert one.exit_code == 0, one.stderr
        two = ranks(*args, "-o", root / f"{name}-2")
        assert [code for code, _ in two] == [0, 0], two
        runs[name] = (root / f"{name}-1", root / f"{name}-2")
    return runs


@pytest.mark.parametrize("variant", ["stream", "sentence", "adaptive"])
def test_two_processes_take_the_steps_of_one(lm_runs, variant):
    one, two = lm_runs[variant]
    assert step_of(one) == step_of(two) == 20
    assert largest_difference(one, two) < 1e-5
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    assert torch.load(two / "last.pt", weights_only=True)["config"]["world_size"] == 2
    one_metrics, two_metrics = (json.loads((run / "metrics.jsonl").read_text().splitlines()[-1]) for run in (one, two))
    assert (
        two_metrics["loss"] == pytest.approx(one_metrics["loss"], abs=1e-5)
        and two_metrics["tokens"] == one_metrics["tokens"]
    )


def test_a_run_resumes_only_on_as_many_processes_as_trained_it(lm_runs):
    one, two = lm_runs["stream"]
    refused = nlm("train", "--resume", two, "--max-steps", "30")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "was trained by 2 processes, not 1; resume it under torchrun with 2 processes" in refused.stderr
    (code0, err0), (code1, err1) = ranks("train", "--resume", one, "--max-steps", "30")
    assert code0 == code1 == 2
    assert "was trained by one process, not 2; resume it without torchrun" in err0 and err0.count("\n") == 1
    assert err1 == ""  # the same error on every rank: rank 0 alone says it
    assert step_of(one) == step_of(two) == 20


@pytest.mark.parametrize(
    "options, words, follower_code",
    [
        (
            ["--train", "-", "--batch-size", "4"],
            "--train - (stdin) cannot be read by several processes",
            1,
        ),  # rank 0's check; rank 1 follows
        (
            ["--train", "{train}", "--batch-size", "1"],
            "--batch-size 1 is smaller than the 2 processes",
            2,
        ),  # every rank's check
    ],
)
def test_what_two_processes_cannot_share_is_one_line_from_rank_0(tmp_path, options, words, follower_code):
    train, _ = write_grammar_corpus(tmp_path, 50)
    options = [o.format(train=train) for o in options]
    (code0, err0), (code1, err1) = ranks(
        "train", *options, "-o", tmp_path / "run", "--hidden", "8", "--emb", "8", "--device", "cpu", "-q"
    )
    assert (code0, code1) == (2, follower_code) and err0.startswith("nlm: error: ") and err0.count("\n") == 1, err0
    assert words in err0 and err1 == ""
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_trained_on_two_processes_scores_on_one_cpu(lm_runs, tmp_path):
    one, two = lm_runs["stream"]
    text = "the cat sees a red house .\na dog walks to the market .\n"
    scores = [nlm("score", "-m", run, "-", "-q", input=text) for run in (one, two)]
    assert [s.exit_code for s in scores] == [0, 0], scores[1].stderr
    single, pair = ([float(line.split("\t")[0]) for line in s.stdout.splitlines()] for s in scores)
    assert len(pair) == 2 and pair == pytest.approx(single, abs=1e-4)


def test_sigterm_to_torchrun_stops_every_rank_rank_0_saves_and_resume_continues_exactly(tmp_path):
    train, valid = write_grammar_corpus(tmp_path, 300)
    total = 200  # steps: far more than run before the signal lands
    args = ["train", "--train", train, "--valid", valid, *LM, "--epochs", "100", "--max-steps", total]
    launcher = torchrun(*args, "--save-every", "5", "-o", tmp_path / "two")
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (tmp_path / "two" / "last.pt").exists():
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.stderr.read()
            time.sleep(0.02)
        launcher.send_signal(signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=TIMEOUT)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    saved = [line for line in stderr.splitlines() if line.startswith("nlm:")]
    assert len(saved) == 1 and "SIGTERM: training stopped and was saved in" in saved[0], stderr
    stopped_at = step_of(tmp_path / "two")
    assert 5 <= stopped_at < total
    resumed = ranks("train", "--resume", tmp_path / "two")
    assert [code for code, _ in resumed] == [0, 0], resumed
    assert step_of(tmp_path / "two") == total
    uninterrupted = ranks(*args, "-o", tmp_path / "through")
    assert [code for code, _ in uninterrupted] == [0, 0], uninterrupted
    assert largest_difference(tmp_path / "through", tmp_path / "two") == 0.0  # exactly: the same sums in the same order


def test_an_adversarially_trained_classifier_under_torchrun_matches_one_process(tmp_path):
    args = [
        "vision",
        "train",
        "--data",
        "generated:300:1",
        "--holdout",
        "60",
        *MLP,
        "--adversarial",
        "--max-steps",
        "12",
    ]
    one, two = alone_and_under_torchrun(tmp_path, args)
    assert step_of(two) == 12 and largest_difference(one, two) < 1e-5
    assert json.loads((two / "config.json").read_text())["world_size"] == 2


def test_autoencoders_train_in_two_processes_through_every_phase(tmp_path):
    plain = [
        "autoencoder",
        "train",
        "--data",
        "generated:200:1",
        "--hidden",
        "16",
        "--batch-size",
        "30",
        "--device",
        "cpu",
        "--optimizer",
        "adam",
        "-q",
        "--max-steps",
        "10",
    ]
    alone = nlm(*plain, "-o", tmp_path / "one")
    assert alone.exit_code == 0, alone.stderr
    assert [code for code, _ in ranks(*plain, "-o", tmp_path / "two")] == [0, 0]
    assert largest_difference(tmp_path / "one", tmp_path / "two") < 1e-5
    stacked = [
        "autoencoder",
        "train",
        "--data",
        "generated:200:1",
        "--kind",
        "stacked",
        "--hidden",
        "24,8",
        "--batch-size",
        "30",
        "--pretrain-epochs",
        "1",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "-q",
    ]
    assert [code for code, _ in ranks(*stacked, "-o", tmp_path / "stacked")] == [0, 0]
    checkpoint = torch.load(tmp_path / "stacked" / "last.pt", weights_only=True)
    assert checkpoint["trainer"]["task"]["phase"] == 2 and checkpoint["config"]["world_size"] == 2


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices (NCCL takes one GPU per process)")
def test_two_gpus_with_nccl_take_the_steps_of_one(tmp_path):
    train, valid = write_grammar_corpus(tmp_path, 300)
    args = ["train", "--train", train, "--valid", valid, *LM, "--max-steps", "20", "--device", "cuda"]
    assert largest_difference(*alone_and_under_torchrun(tmp_path, args)) < 1e-4  # cuDNN sums in its own order

"""NT-ASGD: the averages ASGD keeps, the non-monotone trigger, exact resume across the switch, best.pt on the
averages, and fine-tuning from them (a tiny model with every AWD-LSTM regulariser, through the real CLI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import nlm
from conftest import tiny_text

from nlm.models.rnn import RNNLM, RNNConfig
from nlm.train.averaging import NonMonotoneSwitch, averaged_weights
from nlm.train.config import TrainConfig
from nlm.train.control import LRSchedule
from nlm.train.optim import averaged_sgd


# -- ASGD's averages, by hand ------------------------------------------------------------------------
def test_asgd_keeps_the_mean_of_its_iterates_and_the_swap_restores_the_weights_exactly():
    # One weight on the loss (w - 3)^2 / 2, whose gradient is w - 3: SGD's iterates are w <- w - lr (w - 3).
    w = torch.nn.Parameter(torch.tensor([10.0], dtype=torch.float64))
    sgd = torch.optim.SGD([w], lr=0.5)
    iterates = [10.0]
    for _ in range(2):  # two SGD steps before the switch: their iterates are not averaged
        w.grad = w.detach() - 3
        sgd.step()
        iterates.append(iterates[-1] - 0.5 * (iterates[-1] - 3))
    asgd = averaged_sgd([w], lr=0.5, weight_decay=0.0)
    since = []
    for _ in range(5):
        w.grad = w.detach() - 3
        asgd.step()
        since.append(since[-1] - 0.5 * (since[-1] - 3) if since else iterates[-1] - 0.5 * (iterates[-1] - 3))
        assert w.item() == pytest.approx(since[-1], abs=1e-12)
    # torch's ASGD with t0=0 (mu = 1 / max(1, step - t0)) averages the iterates from its second step on;
    # mu is a float32 scalar, hence the tolerance.
    assert asgd.state[w]["ax"].item() == pytest.approx(sum(since[1:]) / len(since[1:]), abs=1e-7)
    assert abs(asgd.state[w]["ax"].item() - sum(since) / len(since)) > 1e-2  # not the mean with the first one
    raw = w.detach().clone()
    with averaged_weights(asgd) as swapped:
        assert swapped and w.item() == asgd.state[w]["ax"].item()
    assert torch.equal(w.detach(), raw)
    with averaged_weights(sgd) as swapped:  # any other optimizer: nothing to swap
        assert not swapped and torch.equal(w.detach(), raw)


# -- the trigger ---------------------------------------------------------------------------------------
class StandIn:
    """What the trigger and the schedule read of a Trainer: real parameters and a real optimizer."""

    def __init__(self, config: TrainConfig) -> None:
        self.config, self.params = config, [torch.nn.Parameter(torch.zeros(3))]
        self.optimizer = torch.optim.SGD(self.params, lr=config.lr)
        self.epoch_ended, self.stop_reason = True, None

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def stop(self, reason: str) -> None:
        self.stop_reason = reason


def reference_switch_epoch(losses: list[float], nonmono: int) -> int | None:
    """salesforce/awd-lstm-lm main.py's loop, as written there."""
    best_val_loss = []
    for epoch, val_loss in enumerate(losses, 1):
        if len(best_val_loss) > nonmono and val_loss > min(best_val_loss[:-nonmono]):
            return epoch
        best_val_loss.append(val_loss)
    return None


TRIGGERS = [  # losses by epoch, nonmono, the epoch whose evaluation switches
    ([5, 4, 3, 3.5, 3.4, 3.6], 2, 6),  # 3.6 > min(5, 4, 3): the first worse than the best before the last two
    ([5, 4, 3, 3.5, 3.4, 3.0, 2.9], 2, None),  # equal is not worse
    ([5, 6, 7], 1, 3),  # 7 > 5; at epoch 2 there is nothing before the last one yet
    ([5, 4, 4.5, 4.2, 4.1, 4.05, 4.01, 5.0], 5, 8),
]


@pytest.mark.parametrize("losses, nonmono, expected", TRIGGERS)
def test_the_switch_comes_exactly_at_the_non_monotone_condition(losses, nonmono, expected):
    assert reference_switch_epoch(losses, nonmono) == expected
    trainer = StandIn(TrainConfig(optimizer="ntasgd", lr=2.0, nonmono=nonmono, weight_decay=1e-3))
    switch, sgd = NonMonotoneSwitch(trainer.config), trainer.optimizer
    for epoch, loss in enumerate(losses, 1):
        trainer.epoch_ended = False  # an evaluation inside an epoch (a stop) never counts
        switch.on_eval_end(trainer, {"epoch": epoch, "loss": 99.0}, False)
        trainer.epoch_ended = True
        metrics = {"epoch": epoch, "loss": float(loss)}
        switch.on_eval_end(trainer, metrics, False)
        assert (metrics.get("switch") == "asgd") == (epoch == expected)
        assert isinstance(trainer.optimizer, torch.optim.ASGD) == (expected is not None and epoch >= expected)
    if expected is None:
        assert trainer.optimizer is sgd
    else:
        group = trainer.optimizer.param_groups[0]
        assert (group["lr"], group["t0"], group["lambd"], group["weight_decay"]) == (2.0, 0, 0.0, 1e-3)
        assert switch.averaging_since == expected and trainer.stop_reason is None


def test_a_finetuning_stops_at_the_same_condition():
    trainer = StandIn(TrainConfig(optimizer="ntasgd", lr=2.0, nonmono=2))
    switch = NonMonotoneSwitch(trainer.config)
    trainer.progress = type("P", (), {"bad_evals": 3})()
    switch.start_finetuning(trainer)
    assert isinstance(trainer.optimizer, torch.optim.ASGD) and trainer.progress.bad_evals == 0
    for epoch, loss in enumerate([5, 4, 3, 3.5, 3.4, 3.6], 1):
        switch.on_eval_end(trainer, {"epoch": epoch, "loss": float(loss)}, False)
        assert (trainer.stop_reason == "non-monotone") == (epoch == 6)


@pytest.mark.parametrize("schedule, extra", [("decay", {"decay_start": 1}), ("steps", {"milestones": (2, 4)})])
def test_a_schedule_goes_on_with_the_optimizer_that_replaced_sgd(schedule, extra):
    config = TrainConfig(optimizer="ntasgd", lr=8.0, schedule=schedule, lr_factor=0.5, **extra)
    expected = {"decay": [4, 2, 1, 0.5, 0.25], "steps": [8, 4, 4, 2, 2]}[schedule]  # the rate after each epoch
    trainer, schedule_callback = StandIn(config), LRSchedule(config)
    schedule_callback.on_fit_start(trainer)
    rates = []
    for epoch in range(1, 6):
        trainer.params[0].grad = torch.zeros(3)
        trainer.optimizer.step()  # an epoch's training, which leaves the weights where they are
        schedule_callback.on_eval_end(trainer, {"loss": 1.0}, False)
        if epoch == 2:  # NT-ASGD's switch after the schedule's step, at the same rate
            trainer.optimizer = averaged_sgd(trainer.params, lr=trainer.lr, weight_decay=0.0)
        rates.append(trainer.lr)
    assert rates == expected and isinstance(trainer.optimizer, torch.optim.ASGD)


# -- a tiny AWD-LSTM through the CLI: resume across the switch, best.pt, fine-tuning ---------------------
AWD = [
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
    "--batch-size",
    "4",
    "--bptt",
    "8",
    "--optimizer",
    "ntasgd",
    "--nonmono",
    "1",
    "--lr",
    "20",
    "--epochs",
    "6",
    "--device",
    "cpu",
    "-q",
]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """Six epochs in one go: validation worsens at epoch 3 (the switch), the averages win at epoch 6."""
    root = tmp_path_factory.mktemp("ntasgd")
    (root / "train.txt").write_text(tiny_text(120, seed=1))
    (root / "valid.txt").write_text(tiny_text(30, seed=2))
    result = nlm("train", "--train", root / "train.txt", "--valid", root / "valid.txt", "-o", root / "straight", *AWD)
    assert result.exit_code == 0, result.stderr
    logged = metrics(root / "straight")
    assert [m.get("switch") for m in logged] == [None, None, "asgd", None, None, None]
    assert [m.get("weights") for m in logged] == [None] * 3 + ["averaged"] * 3
    return root / "straight"


def checkpoint(run: Path, name: str) -> dict:
    return torch.load(run / f"{name}.pt", weights_only=True)


@pytest.mark.parametrize("stop_at", [70, 95], ids=["before-the-switch", "after-the-switch"])
def test_a_run_stopped_before_or_after_the_switch_resumes_to_the_same_weights(straight, tmp_path, stop_at):
    root = straight.parent
    switch_step = metrics(straight)[2]["step"]
    assert (stop_at < switch_step) == (stop_at == 70)  # mid-epoch 3 (SGD), or mid-epoch 4 (ASGD)
    run = tmp_path / "run"
    first = nlm(
        "train", "--train", root / "train.txt", "--valid", root / "valid.txt", "-o", run, *AWD, "--max-steps", stop_at
    )
    assert first.exit_code == 0, first.stderr
    assert ("t0" in checkpoint(run, "last")["trainer"]["optimizer"]["param_groups"][0]) == (
        stop_at == 95
    )  # ASGD's groups
    resumed = nlm("train", "--resume", run, "--max-steps", 10_000, "-q")
    assert resumed.exit_code == 0, resumed.stderr
    expected, got = checkpoint(straight, "last"), checkpoint(run, "last")
    assert expected["model"].keys() == got["model"].keys()
    assert all(torch.equal(expected["model"][k], got["model"][k]) for k in expected["model"])
    saved, state = expected["trainer"]["optimizer"]["state"], got["trainer"]["optimizer"]["state"]
    assert saved.keys() == state.keys() and all(torch.equal(saved[i]["ax"], state[i]["ax"]) for i in saved)
    steps = {
        m["step"] for m in metrics(straight)
    }  # the evaluation at the stop, mid-epoch, is the interrupted run's own
    assert epoch_ends(run, steps) == epoch_ends(straight, steps)


def epoch_ends(run: Path, steps: set[int]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "elapsed"} for m in metrics(run) if m["step"] in steps]


def parameter_names(config: dict) -> list[str]:
    """The model's parameters in the optimizer's order (tied weights once)."""
    return [name for name, _ in RNNLM(RNNConfig.from_dict(config["model"])).named_parameters()]


def test_best_pt_holds_the_averages_and_scores_the_logged_validation_loss(straight):
    best, last = checkpoint(straight, "best"), checkpoint(straight, "last")
    logged = metrics(straight)[-1]
    assert best["metrics"]["epoch"] == 6 and best["metrics"]["weights"] == "averaged"
    averages = last["trainer"]["optimizer"]["state"]
    for index, name in enumerate(parameter_names(last["config"])):
        assert torch.equal(best["model"][name], averages[index]["ax"]), name
        assert not torch.equal(last["model"][name], best["model"][name]), name  # last.pt: the raw weights
    scored = nlm(
        "perplexity", straight.parent / "valid.txt", "-m", straight / "best.pt", "--format", "json", "--device", "cpu"
    )
    assert scored.exit_code == 0, scored.stderr
    assert json.loads(scored.stdout)["loss"] == pytest.approx(logged["loss"], abs=1e-6)
    raw = nlm(
        "perplexity", straight.parent / "valid.txt", "-m", straight / "last.pt", "--format", "json", "--device", "cpu"
    )
    assert abs(json.loads(raw.stdout)["loss"] - logged["loss"]) > 1e-3


def test_finetuning_restarts_averaged_sgd_from_best_pt(straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    before = checkpoint(run, "best")
    result = nlm("train", "--resume", str(run), "--finetune", "--lr", "1e-9", "--epochs", "8")
    assert result.exit_code == 0, result.stderr
    assert "fine-tuning" in result.stderr and "best.pt" in result.stderr and "--epochs 6 -> 8" in result.stderr
    last = checkpoint(run, "last")
    steps = last["trainer"]["progress"]["global_step"] - 166
    names = parameter_names(last["config"])
    for index, name in enumerate(names):  # at lr 1e-9 the weights stay where the fine-tuning started: best.pt's
        assert (last["model"][name] - before["model"][name]).abs().max() < 1e-6, name
        assert last["trainer"]["optimizer"]["state"][index]["step"] == steps  # a fresh ASGD
    assert (checkpoint(straight, "last")["model"][names[0]] - last["model"][names[0]]).abs().max() > 1e-3
    config = json.loads((run / "config.json").read_text())
    assert config["finetune"] == [{"epoch": 6, "step": 166, "best_loss": metrics(straight)[-1]["loss"]}]
    assert last["trainer"]["callbacks"]["NonMonotoneSwitch"]["finetuning"] is True
    assert [m["epoch"] for m in metrics(run)] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_finetuning_is_granted_the_runs_limits_again(straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    result = nlm("train", "--resume", str(run), "--finetune")
    assert result.exit_code == 0, result.stderr
    assert "--epochs 6 -> 12" in result.stderr and "stopped (epochs: 12 epochs)" in result.stderr
    losses = [m["loss"] for m in metrics(run)[6:]]
    assert len(losses) == 6 and reference_switch_epoch(losses, 1) is None  # it never stalled, so it ran them all
    assert min(losses) < metrics(straight)[-1]["loss"] - 0.3  # and the averages went on improving
    assert checkpoint(run, "best")["metrics"]["epoch"] == 6 + 1 + losses.index(min(losses))

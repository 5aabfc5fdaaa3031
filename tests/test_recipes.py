"""`nlm train --recipe`: published configurations as presets, through the real CLI."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from cli_helpers import nlm

from nlm.cli import app
from nlm.lm.recipes import RECIPES


def test_every_recipe_sets_only_options_of_nlm_train():
    command = typer.main.get_command(app).commands["train"]
    options = {p.name for p in command.params}
    for recipe in RECIPES.values():
        assert set(recipe.options) <= options, (recipe.name, set(recipe.options) - options)
        assert recipe.figure and recipe.source and recipe.data


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_builds_valid_configs(name, tmp_path):
    # The configs are built and checked before any input is read: a missing file (66), not a bad option (2).
    result = nlm("train", "--recipe", name, "--train", tmp_path / "missing.txt", "-o", tmp_path / "run", "-q")
    assert result.exit_code == 66 and "missing.txt: no such file" in result.stderr, result.stderr


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_trains_when_made_small(name, tiny_corpus, tmp_path):
    """The first thing anyone does with a recipe is to make it small: a tied recipe's last layer follows --emb."""
    train, valid = tiny_corpus
    recipe = RECIPES[name]
    cutoffs = ["--cutoffs", "8"] if recipe.options["softmax"] == "adaptive" else []  # under the tiny vocabulary
    small = ["--emb", "16", "--hidden", "32", "--max-steps", "3", *cutoffs]
    result = nlm("train", "--recipe", name, "--train", train, "--valid", valid, "-o", tmp_path / "run", *small, "-q")
    assert result.exit_code == 0, result.stderr
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert (model["emb"], model["hidden"]) == (16, 32)
    if recipe.options.get("tie"):
        assert model["tie"] and model["last_hidden"] == 16
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]["progress"]["global_step"] == 3


def test_a_last_layer_given_with_a_tied_recipe_is_kept(tiny_corpus, tmp_path):
    train, _ = tiny_corpus
    small = ["--emb", "16", "--hidden", "32", "--last-hidden", "24", "--max-steps", "1", "-q"]
    result = nlm("train", "--recipe", "awd-ptb", "--train", train, "-o", tmp_path / "run", *small)
    assert result.exit_code == 2 and "--tie needs --emb equal to --last-hidden" in result.stderr


def test_recipe_list_shows_every_recipe_with_its_published_figure_and_source():
    result = nlm("train", "--recipe", "list")
    assert result.exit_code == 0 and result.stderr == ""
    for recipe in RECIPES.values():
        assert f"{recipe.name}\n" in result.stdout and recipe.figure in result.stdout and recipe.source in result.stdout
    for figure in ("120.7", "86.2", "82.2", "57.3", "65.8", "1.175", "117.61"):
        assert figure in result.stdout


def test_a_recipe_fills_what_the_command_line_leaves_and_config_json_records_it(tiny_corpus, tmp_path):
    train, valid = tiny_corpus
    run = tmp_path / "run"
    result = nlm(
        "train",
        "--recipe",
        "zaremba-small",
        "--train",
        train,
        "--valid",
        valid,
        "-o",
        run,
        "--emb",
        "16",
        "--hidden",
        "16",
        "--max-steps",
        "2",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    assert (
        "recipe zaremba-small: " in result.stderr
        and "--lr 20.0" in result.stderr
        and "given: --emb --hidden" in result.stderr
    )
    config = json.loads((run / "config.json").read_text())
    model, data, training = config["model"], config["data"], config["train"]
    assert (model["emb"], model["hidden"]) == (16, 16)  # given on the command line
    assert (model["layers"], model["tie"], model["dropout"], model["init_range"], model["rnn_init"]) == (
        2,
        False,
        0.0,
        0.1,
        "uniform",
    )
    assert (data["bptt"], data["batch_size"], data["variable_bptt"]) == (20, 20, False)
    assert (training["optimizer"], training["lr"], training["clip"], training["schedule"]) == (
        "sgd",
        20.0,
        0.25,
        "decay",
    )
    assert (training["lr_factor"], training["decay_start"], training["epochs"], training["max_steps"]) == (
        0.5,
        4,
        13,
        2,
    )
    assert training["recipe"] == "zaremba-small"
    assert torch.load(run / "last.pt", weights_only=True)["config"]["train"]["recipe"] == "zaremba-small"


def test_an_ntasgd_recipe_reaches_the_optimizer_and_its_schedule(tiny_corpus, tmp_path):
    train, valid = tiny_corpus
    run = tmp_path / "run"
    small = [
        "--emb",
        "8",
        "--hidden",
        "16",
        "--last-hidden",
        "8",
        "--batch-size",
        "4",
        "--bptt",
        "8",
        "--max-steps",
        "3",
    ]
    result = nlm(
        "train", "--recipe", "awd-ptb", "--train", train, "--valid", valid, "-o", run, *small, "--device", "cpu", "-q"
    )
    assert result.exit_code == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert (config["train"]["optimizer"], config["train"]["schedule"], config["train"]["nonmono"]) == (
        "ntasgd",
        "none",
        5,
    )
    assert (config["train"]["lr"], config["train"]["weight_decay"], config["train"]["seed"]) == (30.0, 1.2e-6, 141)
    assert (
        config["model"]["weight_drop"] == 0.5 and config["model"]["locked_dropout"] and config["data"]["variable_bptt"]
    )
    assert (config["model"]["dropout_input"], config["model"]["dropout_hidden"], config["model"]["dropout_output"]) == (
        0.4,
        0.25,
        0.4,
    )

"""The README's tour does what its words say: every ```sh block under "A tour", in order, from a fresh working folder.

The commands run one by one in a temporary folder that holds the repository's `corpora/` (and `../shared`
where this checkout has it), the way a new user runs them from a clone, and each test below checks one
example's claim on what they left: the limit that stopped a run and that it lasted its budget, the files
and columns the text names, NT-ASGD's switch (or, as the text says, its absence), the mid-epoch checkpoints,
the pictures' labels.  Only the budgets change, all by one factor, SCALE: every `--max-time` and `--save-every`
duration, and every count of steps or epochs, is divided by it (a count rounded up, to at least 1), so the
tour takes minutes instead of the better part of an hour.  A command with no limit of its own runs as written.
A command that names `../shared/data` is skipped where that folder is absent.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import nlm, png_size
from conftest import REPO, SHARED_DATA
from lm_helpers import session_root, train_tiny_lm, write_corpus

README = REPO / "README.md"
SCALE = 100  # every budget of the tour, divided by this (the README says so)
COUNTS = re.compile(r"(--(?:max-steps|epochs|pretrain-epochs|save-every) )(\d+)\b(?![smh.])")
SECONDS = re.compile(r"(--max-time )(\d+(?:\.\d+)?)")
DURATION = re.compile(r"(--save-every )(\d+(?:\.\d+)?)([smh])\b")


def tour_blocks(text: str) -> list[str]:
    """The ```sh blocks between the "## A tour" heading and the next level-2 heading."""
    tour = text.split("\n## A tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", tour, re.S)


def commands(block: str) -> list[str]:
    """A block's commands: continued lines joined, a `for ... done` loop kept whole, comments dropped."""
    found, loop = [], []
    for line in block.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if loop or line.startswith("for "):
            loop.append(line)
            if line.strip().startswith("done"):
                found, loop = [*found, "\n".join(loop)], []
            continue
        found.append(line)
    return found


def scaled(command: str) -> str:
    """The command with every budget divided by SCALE."""
    command = SECONDS.sub(lambda m: f"{m[1]}{float(m[2]) / SCALE:g}", command)
    seconds = {"s": 1, "m": 60, "h": 3600}
    command = DURATION.sub(lambda m: f"{m[1]}{float(m[2]) * seconds[m[3]] / SCALE:g}s", command)
    return COUNTS.sub(lambda m: f"{m[1]}{max(1, math.ceil(int(m[2]) / SCALE))}", command)


@dataclass
class Tour:
    folder: Path
    runs: list[tuple[str, subprocess.CompletedProcess]]

    def of(self, words: str) -> subprocess.CompletedProcess:
        """The first command that contains `words`."""
        found = [done for command, done in self.runs if words in command]
        if not found:
            pytest.skip(f"no command with {words!r} ran (it needs ../shared/data)")
        return found[0]

    def metrics(self, run: str) -> list[dict]:
        return [json.loads(line) for line in (self.folder / run / "metrics.jsonl").read_text().splitlines()]


def test_the_tour_is_found_and_every_command_in_it_is_an_nlm_command():
    blocks = tour_blocks(README.read_text())
    found = [command for block in blocks for command in commands(block)]
    assert len(blocks) >= 5 and len(found) >= 40
    assert all("nlm " in command for command in found), found
    assert scaled("x --max-time 300 --save-every 30s --epochs 3 --max-steps 300 --save-every 200") == (
        f"x --max-time {300 / SCALE:g} --save-every {30 / SCALE:g}s --epochs 1 --max-steps {math.ceil(300 / SCALE)} "
        f"--save-every {math.ceil(200 / SCALE)}"
    )


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> Tour:
    """Every command of the tour, run once, in order; a command that fails stops the tour there."""
    root = tmp_path_factory.mktemp("tour")
    work = root / "clone"
    work.mkdir()
    (work / "corpora").symlink_to(REPO / "corpora")
    if SHARED_DATA.is_dir():
        (root / "shared").symlink_to(SHARED_DATA.parent)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "NLM_CACHE_DIR": str(root / "cache"),
    }
    runs = []
    for block in tour_blocks(README.read_text()):
        if "../shared/data" in block and not SHARED_DATA.is_dir():
            continue
        for command in map(scaled, commands(block)):
            done = subprocess.run(
                ["bash", "-c", "set -eu\n" + command],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{command}\n--- stderr ---\n{done.stderr[-3000:]}"
            assert "Traceback" not in done.stderr, done.stderr
            runs.append((command, done))
    return Tour(work, runs)


def stopped_by(tour: Tour, run: str, reason: str, budget: float | None = None) -> dict:
    """The run's last evaluation says `reason` stopped it; a time budget was used in full."""
    last = tour.metrics(run)[-1]
    assert last["stop"] == reason, (run, last)
    if budget is not None:
        assert last["elapsed"] >= budget / SCALE, (run, last)
    return last


@pytest.mark.slow
def test_vocab_show_lists_the_most_frequent_symbols_after_the_specials(tour):
    rows = [
        line.split("\t") for line in tour.of("nlm vocab show runs/en.vocab --top").stdout.splitlines() if "\t" in line
    ]
    assert [int(row[0]) for row in rows] == list(range(4, 14))
    counts = [int(row[2]) for row in rows]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.slow
def test_a_time_budget_is_a_budget_and_the_resume_extends_it(tour):
    first = tour.of("-o runs/en ").stderr
    assert f"stopped (max-time: {300 / SCALE:g} s)" in first and "epochs=none" in first
    assert f"divided by one factor, {SCALE}," in " ".join(README.read_text().split())
    stops = [m for m in tour.metrics("runs/en") if "stop" in m]
    assert [m["stop"] for m in stops] == ["max-time", "max-time"]
    assert 300 / SCALE <= stops[0]["elapsed"] < 600 / SCALE <= stops[1]["elapsed"]
    resumed = tour.of("nlm train --resume runs/en --max-time").stderr
    assert "resuming runs/en at epoch" in resumed and f"--max-time {300 / SCALE} -> {600 / SCALE}" in resumed


@pytest.mark.slow
def test_save_every_writes_mid_epoch_checkpoints_and_says_where(tour):
    stopped_by(tour, "runs/en-word", "max-time", 120)
    saves = re.findall(
        r"step \d+: saved last\.pt \(epoch \d+, batch (\d+) of (\d+)\)", tour.of("-o runs/en-word").stderr
    )
    assert saves and any(int(batch) < int(of) for batch, of in saves), saves


@pytest.mark.slow
def test_the_recipe_runs_its_60_seconds_and_the_awd_run_its_300_without_switching(tour):
    assert "awd-ptb" in tour.of("--recipe list").stdout
    assert "recipe example: " in tour.of("--recipe example").stderr
    stopped_by(tour, "runs/en-example", "max-time", 60)
    awd = tour.metrics("runs/en-awd")
    first = next(i for i, m in enumerate(awd) if "stop" in m)
    assert awd[first]["stop"] == "max-time" and awd[first]["elapsed"] >= 300 / SCALE
    assert not any("switch" in m or "weights" in m for m in awd[: first + 1])  # plain SGD throughout, as the text says


@pytest.mark.slow
def test_finetune_averages_from_best_pt_for_its_limits_granted_again(tour):
    assert "fine-tuning runs/en-awd from best.pt" in tour.of("--finetune").stderr
    awd = tour.metrics("runs/en-awd")
    first = next(i for i, m in enumerate(awd) if "stop" in m)
    finetuning = awd[first + 1 :]
    assert finetuning and all(m["weights"] == "averaged" for m in finetuning)
    assert finetuning[-1]["stop"] in ("non-monotone", "max-time")
    if finetuning[-1]["stop"] == "max-time":
        assert finetuning[-1]["elapsed"] >= 600 / SCALE


@pytest.mark.slow
def test_the_adaptive_softmax_example_runs_its_budget(tour):
    tour.of("runs/wt2-adaptive")
    stopped_by(tour, "runs/wt2-adaptive", "max-time", 600)


@pytest.mark.slow
def test_scoring_and_perplexity_write_what_the_text_names(tour):
    rows = [line.split("\t") for line in tour.of("nlm score -m runs/en corpora").stdout.splitlines()]
    assert len(rows) == 3 and all(len(row) == 4 for row in rows)  # logprob  tokens  oovs  ppl
    tokens = [line.split("\t") for line in tour.of("--per-token --base 2").stdout.splitlines()]
    assert tokens and all(len(row) == 4 and row[0] == "1" for row in tokens)  # sentence, position, token, log-prob
    assert tour.of("nlm perplexity -m runs/en").stdout.startswith("PPL|protocol:stream|model:best.pt#")


@pytest.mark.slow
def test_generation_and_bleu_compare_what_the_text_says(tour):
    sampled = tour.of('--prompt "the river" --sample')
    assert len(sampled.stdout.splitlines()) == 3 and all(
        line.startswith("the river") for line in sampled.stdout.splitlines()
    )
    prompts = (REPO / "corpora/english/prompts.txt").read_text().splitlines()
    hyps = (tour.folder / "runs/hyps.txt").read_text().splitlines()
    greedy = (tour.folder / "runs/greedy.txt").read_text().splitlines()
    assert len(hyps) == len(greedy) == len(prompts) == 20
    assert all(g.startswith(p) and g.endswith(h) for p, h, g in zip(prompts, hyps, greedy))  # the prompt, in front
    assert [line.split("|")[0] for line in tour.of("nlm bleu runs/hyps.txt").stdout.splitlines()] == ["BLEU", "chrF2"]
    evaluated = tour.of("nlm evaluate -m runs/en --prompts").stdout.splitlines()
    assert [line.split("|")[0] for line in evaluated] == ["BLEU", "chrF2", "PPL"]


@pytest.mark.slow
def test_image_commands_write_the_rows_and_files_the_text_names(tour):
    predicted = [line.split("\t") for line in tour.of("nlm vision predict").stdout.splitlines()]
    assert len(predicted) == 10 and all(len(row) == 3 for row in predicted)  # index  label  probability
    header, *rows = tour.of("nlm vision attack -m runs/digits").stdout.splitlines()
    assert header == "epsilon\taccuracy\timages" and [float(r.split("\t")[0]) for r in rows] == [0, 0.05, 0.1, 0.2]
    assert "accuracy" in tour.of("nlm vision eval").stdout
    assert "initialised 2 hidden layer(s) from the encoder" in tour.of("--init-from runs/sae").stderr
    assert np.load(tour.folder / "runs/codes.npy").shape == (1000, 64)
    for picture in ("pairs.png", "filters.png"):
        png_size(tour.folder / "runs" / picture)


@pytest.mark.slow
def test_the_stacked_autoencoder_says_what_loss_and_mse_measure(tour):
    said = tour.of("--kind stacked").stderr
    assert "layer 1/2: training layer 1 alone; loss: its error rebuilding its own input (the images)" in said
    assert "layer 2/2: training layer 2 alone; loss: its error rebuilding its own input (layer 1's code)" in said
    assert "fine-tune: training the whole network; loss and mse: its error on the images" in said
    phases = {m["phase"] for m in tour.metrics("runs/sae")}
    assert phases == {"layer 1/2", "layer 2/2", "fine-tune"}


@pytest.mark.slow
def test_diagnose_prints_its_tables_and_the_clipping_example_clips(tour):
    header, *rows = tour.of("nlm diagnose gradients").stdout.splitlines()
    assert header == "lag\trnn-tanh\tlstm\tgru" and len(rows) == 51
    png_size(tour.folder / "runs/gradient-flow.png")
    header, *rows = [line.split("\t") for line in tour.of("nlm diagnose clipping").stdout.splitlines()]
    assert header == ["model", "layer", "before", "after", "clipped"] and {row[4] for row in rows} == {"yes"}
    total = next(row for row in rows if row[1] == "total")
    assert 0.05 < float(total[2]) and float(total[3]) == pytest.approx(0.05, rel=1e-4)


@pytest.mark.slow
def test_the_copy_task_trains_its_steps_and_evaluate_reports_accuracy(tour):
    printed = re.search(r"^train on it: (.*)$", tour.of("nlm corpus copy -o runs/copy40").stderr, re.M).group(1)
    written = next(c for b in tour_blocks(README.read_text()) for c in commands(b) if "-o runs/copy40-lstm" in c)
    assert printed.split() == written.split()  # the recipe `nlm corpus` prints is the README's
    stopped_by(tour, "runs/copy40-lstm", "max-steps")
    assert re.search(r"^accuracy \d\.\d{4}", tour.of("--task runs/copy40").stdout, re.M)


@pytest.mark.slow
def test_the_three_cells_train_their_40_seconds_and_the_curves_are_perplexity(tour):
    for cell in ("lstm", "gru", "rnn-tanh"):
        stopped_by(tour, f"runs/english/{cell}", "max-time", 40)
    assert "wrote the perplexity curves of 3 run(s) against time" in tour.of("nlm plot runs/english").stderr
    neighbours = [
        line.split("\t") for line in tour.of("nlm neighbours -m runs/english/lstm morning").stdout.splitlines()
    ]
    assert len(neighbours) == 6 and all(len(row) == 3 for row in neighbours)


@pytest.mark.slow
def test_the_fgsm_picture_is_labelled_as_the_text_says(tour):
    said = tour.of("--examples runs/fgsm-examples.png").stderr
    assert "(rows: clean, sign(grad) x 0.25, adversarial;" in said
    assert "labelled\n`sign(grad) x 0.25`" in README.read_text()
    png_size(tour.folder / "runs/fgsm-examples.png")


def test_make_demo_trains_for_its_90_seconds():
    """The set-up's `make demo` line says 90 s: its run has that budget and no epoch limit to end it sooner."""
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^DEMO_SECONDS \?= 90$", makefile, re.M) and "trained for 90 s" in README.read_text()
    train = re.search(r"\$\(NLM\) train (.*?)\n\t\$\(NLM\)", makefile.split("\ndemo:", 1)[1], re.S).group(1)
    assert "--max-time $(DEMO_SECONDS)" in train and "--epochs" not in train


def test_the_old_spellings_are_exactly_those_the_text_names(tmp_path_factory, tmp_path):
    """`--format jsonl` / `table` where json / text are taken, and `--json` for perplexity, evaluate and bleu only."""
    text = " ".join(README.read_text().split())
    assert "and `--json` for `perplexity`, `evaluate` and `bleu` only" in text
    root = session_root(tmp_path_factory)
    run, valid = train_tiny_lm(root, "word"), write_corpus(root / "corpus")[1]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(" ".join(line.split()[:1]) + "\n" for line in valid.read_text().splitlines()[:5]))
    refs = tmp_path / "refs.txt"
    refs.write_text("".join(valid.read_text().splitlines(keepends=True)[:5]))
    takes_json = {
        "perplexity": ["perplexity", "-m", run, valid],
        "evaluate": ["evaluate", "-m", run, "--prompts", prompts, "--refs", refs],
        "bleu": ["bleu", refs, refs],
    }
    for command in takes_json.values():
        result = nlm(*command, "--json")
        assert result.exit_code == 0 and json.loads(result.stdout.splitlines()[0]), result.stderr
    for command in (["score", "-m", run, valid], ["generate", "-m", run, "--prompts", prompts]):
        assert nlm(*command, "--json").exit_code == 2
        assert json.loads(nlm(*command, "--format", "jsonl").stdout.splitlines()[0])
    assert nlm("perplexity", "-m", run, valid, "--format", "table").stdout.startswith("PPL|")

"""`nlm corpus copy | recall | markov` through the real CLI: the files, their lines, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import nlm, one_line_error

from nlm.corpora.markov import MarkovSource
from nlm.corpora.memory import FILLER, MARKER


@pytest.mark.parametrize("kind", ["copy", "recall"])
def test_every_line_asks_for_the_symbol_read_lag_steps_before_the_mark(tmp_path, kind):
    result = nlm("corpus", kind, "-o", tmp_path, "--lag", 7, "--symbols", 5, "--lines", 60, "--seed", 3)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "chance on the marked tokens 0.2000" in result.stderr
    symbols = {f"a{i}" for i in range(5)}
    for split, count in [("train", 60), ("valid", 6), ("test", 6)]:
        lines = (tmp_path / f"{split}.txt").read_text().splitlines()
        assert len(lines) == count
        for line in lines:
            words = line.split()
            assert len(words) == 7 + 2 and words.index(MARKER) == 7  # the mark is read 7 steps after the symbol
            assert words[-1] == words[0] and words[0] in symbols
            middle = set(words[1:7])
            assert middle == {FILLER} if kind == "copy" else middle <= symbols
    info = json.loads((tmp_path / "task.json").read_text())
    assert (info["kind"], info["lag"], info["symbols"], info["chance"], info["marker"]) == (kind, 7, 5, 0.2, "?")


def test_same_seed_same_files_and_held_out_files_do_not_move_with_lines(tmp_path):
    nlm("corpus", "recall", "-o", tmp_path / "a", "--lag", 4, "--lines", 50, "--eval-lines", 20)
    nlm("corpus", "recall", "-o", tmp_path / "b", "--lag", 4, "--lines", 50, "--eval-lines", 20)
    nlm("corpus", "recall", "-o", tmp_path / "c", "--lag", 4, "--lines", 90, "--eval-lines", 20)

    def read(folder: str, split: str) -> str:
        return (tmp_path / folder / f"{split}.txt").read_text()

    assert read("a", "train") == read("b", "train") and read("a", "test") == read("b", "test")
    assert read("a", "test") == read("c", "test") and read("a", "valid") == read("c", "valid")
    assert read("a", "train") != read("c", "train")
    first = {line.split()[0] for line in read("c", "train").splitlines()}
    assert len(first) == 8  # the default 8 symbols all occur in 90 lines


def test_markov_writes_the_corpus_and_reports_its_exact_entropy(tmp_path):
    result = nlm("corpus", "markov", "-o", tmp_path, "--train-lines", 30, "--valid-lines", 5, "--num-words", 5)
    assert result.exit_code == 0, result.stderr
    source = MarkovSource.random(num_words=5)
    assert f"{source.entropy_rate():.6f} nats" in result.stderr
    assert len((tmp_path / "train.txt").read_text().splitlines()) == 30
    assert MarkovSource.load(tmp_path / "source.json") == source
    train_seed = np.random.SeedSequence(0).spawn(2)[0]  # the sample seed's first stream is train.txt's
    assert (tmp_path / "train.txt").read_text().splitlines() == source.sample(30, seed=train_seed)


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["copy", "--lag", 0], 2, "--lag must be at least 1"),
        (["recall", "--symbols", 1], 2, "--symbols must be between 2"),
        (["copy", "--lines", 0], 2, "--lines must be at least 1"),
        (["markov", "--mean-length", 0.5], 2, "mean_length must be >= 1"),
    ],
)
def test_nonsense_settings_are_one_line_errors(tmp_path, args, code, words):
    one_line_error(nlm("corpus", args[0], "-o", tmp_path / "out", *args[1:]), code, words)


@pytest.mark.parametrize("kind", ["copy", "markov"])
def test_an_existing_corpus_is_kept_unless_forced_and_a_file_is_no_folder(tmp_path, kind):
    assert nlm("corpus", kind, "-o", tmp_path, "--force").exit_code == 0
    one_line_error(nlm("corpus", kind, "-o", tmp_path), 73, "pass --force to replace them")
    one_line_error(nlm("corpus", kind, "-o", tmp_path / "train.txt"), 73, "is not a folder")

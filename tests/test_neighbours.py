"""`nlm neighbours`: two words used in identical contexts end up each other's nearest neighbour,
for word and subword models; analogies, stdin, and unknown words."""

from __future__ import annotations

import random

import pytest
import torch
from cli_helpers import nlm, one_line_error

from nlm.lm.loading import load_language_model
from nlm.lm.neighbours import nearest_words

TRAIN = [
    "--hidden",
    16,
    "--layers",
    1,
    "--dropout",
    0,
    "--optimizer",
    "adam",
    "--lr",
    0.01,
    "--max-steps",
    150,
    "--epochs",
    100,
    "--batch-size",
    8,
    "--bptt",
    12,
    "--device",
    "cpu",
    "--seed",
    1,
    "-q",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`the cat|dog VERB a ADJ NOUN .`: cat and dog are drawn from one slot, so their contexts are identical."""
    root = tmp_path_factory.mktemp("neighbours")
    rng = random.Random(0)
    slots = [
        ["cat", "dog"],
        ["sees", "likes", "finds", "paints"],
        ["red", "old", "small"],
        ["river", "house", "market", "boat", "hill"],
    ]
    text = root / "train.txt"
    text.write_text(
        "".join(
            f"the {rng.choice(slots[0])} {rng.choice(slots[1])} a {rng.choice(slots[2])} {rng.choice(slots[3])} .\n"
            for _ in range(400)
        )
    )
    folders = {}
    for level, extra in [("word", []), ("bpe", ["--vocab-size", 60])]:
        folders[level] = root / level
        result = nlm("train", "--train", text, "-o", folders[level], "--level", level, *extra, *TRAIN)
        assert result.exit_code == 0, result.stderr
    return folders


def rows(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines()]


def test_words_in_identical_contexts_are_each_others_nearest(runs):
    result = nlm("neighbours", "-m", runs["word"], "cat", "dog", "river", "--top", 3)
    assert result.exit_code == 0, result.stderr
    table = rows(result.stdout)
    assert [row[0] for row in table] == ["cat"] * 3 + ["dog"] * 3 + ["river"] * 3  # input order, --top each
    assert table[0][1] == "dog" and table[3][1] == "cat"
    assert float(table[0][2]) > 0.9 and float(table[0][2]) - float(table[1][2]) > 0.3  # measured 0.99, then 0.27
    assert {row[1] for row in table[6:]} <= {"house", "market", "boat", "hill"}  # a noun's neighbours are nouns
    cosines = [float(row[2]) for row in table[:3]]
    assert cosines == sorted(cosines, reverse=True) and "cat" not in [row[1] for row in table[:3]]


def test_subword_models_use_the_pieces_vectors(runs):
    result = nlm("neighbours", "-m", runs["bpe"], "cat", "dog", "--top", 1)
    assert result.exit_code == 0, result.stderr
    assert [row[:2] for row in rows(result.stdout)] == [["cat", "\u2581dog"], ["dog", "\u2581cat"]]  # ▁ starts a word


def test_cosines_are_those_of_the_embedding_rows(runs):
    lm = load_language_model(runs["word"])
    (result,) = nearest_words(lm, ["cat"], top=2)
    e = lm.model.embedding.weight.detach()
    cat, dog = (e[lm.vocab.encode(w)[0]] for w in ("cat", "dog"))
    assert result.found[0] == ("dog", pytest.approx(float(torch.cosine_similarity(cat, dog, dim=0)), abs=1e-6))


def test_analogy_leaves_out_its_own_words(runs):
    result = nlm("neighbours", "-m", runs["word"], "--analogy", "cat", "dog", "river", "--top", 4)
    assert result.exit_code == 0, result.stderr
    table = rows(result.stdout)
    assert {row[0] for row in table} == {"dog-cat+river"} and len(table) == 4
    assert not {"cat", "dog", "river"} & {row[1] for row in table}
    assert {row[1] for row in table[:2]} <= {"house", "market", "boat", "hill"}


def test_words_from_stdin_and_a_warning_for_an_unknown_one(runs):
    result = nlm("neighbours", "-m", runs["word"], "--top", 1, input="cat zebra\ndog\n")
    assert result.exit_code == 0, result.stderr
    assert [row[:2] for row in rows(result.stdout)] == [["cat", "dog"], ["dog", "cat"]]
    assert result.stderr.count("\n") == 1 and "'zebra' is not in the vocabulary" in result.stderr


def test_words_and_an_analogy_together_are_a_one_line_error(runs):
    one_line_error(nlm("neighbours", "-m", runs["word"], "cat", "--analogy", "a", "b", "c"), 2, "not both")
    one_line_error(nlm("neighbours", "-m", runs["word"].parent / "none", "cat"), 66, "none")

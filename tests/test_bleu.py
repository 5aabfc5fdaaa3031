"""Tests for nlm.eval.bleu and `nlm bleu`: the same numbers as sacrebleu, golden cases, bad input."""

from __future__ import annotations

import json
import math

import pytest
import sacrebleu
from cli_helpers import nlm
from sacrebleu.metrics import CHRF

from nlm.errors import ConfigError, DataError
from nlm.eval.bleu import corpus_scores, parse_metrics, read_parallel, sentence_scores

CASES = {
    "modified precision": (["the the the the the the the"], [["the cat is on the mat"], ["there is a cat on the mat"]]),
    "perfect": (["the cat sat on the mat ."], [["the cat sat on the mat ."]]),
    "disjoint": (["alpha beta gamma delta"], [["one two three four"]]),
    "short hypothesis": (["the cat sat on the mat"], [["the cat sat on the mat today"]]),
    "two sentences, two references": (
        [
            "It is a guide to action which ensures that the military always obeys the commands of the party.",
            "he read the book because he was interested in world history",
        ],
        [
            [
                "It is a guide to action that ensures that the military will forever heed Party commands.",
                "he was interested in world history because he read the book",
            ],
            [
                "It is the guiding principle which guarantees the military forces always being "
                "under the command of the Party.",
                "he read the book because he was interested in world history",
            ],
        ],
    ),
    "punctuation and case": (["Hello, World! It's fine."], [["hello , world ! it 's fine ."]]),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("tokenize, lowercase", [(None, False), ("none", False), ("intl", True)])
def test_corpus_bleu_and_chrf_equal_sacrebleu(name, tokenize, lowercase):
    hyps, refs = CASES[name]
    bleu, chrf = corpus_scores(hyps, refs, metrics=["bleu", "chrf"], tokenize=tokenize, lowercase=lowercase)
    expected = sacrebleu.corpus_bleu(hyps, refs, tokenize=tokenize or "13a", lowercase=lowercase)
    assert bleu.score == expected.score
    assert bleu.details["counts"] == expected.counts and bleu.details["totals"] == expected.totals
    assert chrf.score == CHRF(lowercase=lowercase).corpus_score(hyps, refs).score
    assert bleu.signature.startswith(f"nrefs:{len(refs)}|case:{'lc' if lowercase else 'mixed'}|")
    assert f"tok:{tokenize or '13a'}" in bleu.signature


def test_modified_unigram_precision_is_two_sevenths():
    (bleu,) = corpus_scores(*CASES["modified precision"])
    assert bleu.details["counts"][0] / bleu.details["totals"][0] == pytest.approx(2 / 7)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("perfect", 100.0),
        ("disjoint", 0.0),
        ("short hypothesis", 100 * math.exp(1 - 7 / 6)),  # every n-gram matches; brevity penalty exp(1 - r/c)
    ],
)
def test_bleu_from_its_definition(name, expected):
    (bleu,) = corpus_scores(*CASES[name])
    assert bleu.score == pytest.approx(expected, abs=1e-9)


def test_sentence_scores_equal_sacrebleus_sentence_functions():
    hyps, refs = CASES["two sentences, two references"]
    rows = list(sentence_scores(hyps, refs, metrics=["bleu", "chrf"]))
    assert len(rows) == 2
    for i, (bleu, chrf) in enumerate(rows):
        assert bleu.score == sacrebleu.sentence_bleu(hyps[i], [r[i] for r in refs]).score
        assert chrf.score == sacrebleu.sentence_chrf(hyps[i], [r[i] for r in refs]).score
        assert "eff:yes" in bleu.signature


def test_bad_metrics_and_lengths_are_errors():
    with pytest.raises(ConfigError, match="unknown metric 'meteor'"):
        parse_metrics("bleu,meteor")
    with pytest.raises(ConfigError, match="--tokenize"):
        corpus_scores(["a"], [["a"]], tokenize="nonsense")
    with pytest.raises(DataError, match="has 1 lines but the hypotheses has 2"):
        corpus_scores(["a", "b"], [["a"]])


def test_read_parallel_names_the_file_that_is_short(tmp_path):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("a b\nc d\n")
    ref.write_text("a b\n")
    with pytest.raises(DataError, match=f"{ref} has 1 lines but {hyp} has 2"):
        read_parallel(hyp, [ref])


@pytest.fixture()
def files(tmp_path):
    hyps, refs = CASES["two sentences, two references"]
    paths = [tmp_path / "hyp.txt", tmp_path / "ref1.txt", tmp_path / "ref2.txt"]
    for path, lines in zip(paths, [hyps, *refs]):
        path.write_text("".join(line + "\n" for line in lines))
    return [str(p) for p in paths]


def test_cli_prints_sacrebleus_score_and_signature(files):
    hyps, refs = CASES["two sentences, two references"]
    result = nlm("bleu", *files, "--metrics", "bleu,chrf")
    assert result.exit_code == 0, result.output
    bleu_line, chrf_line = result.stdout.splitlines()
    expected = sacrebleu.corpus_bleu(hyps, refs)
    assert bleu_line.startswith("BLEU|nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert bleu_line.split(" = ")[1].split()[0] == f"{expected.score:.2f}"
    assert chrf_line.startswith("chrF2|nrefs:2|")
    records = [json.loads(line) for line in nlm("bleu", *files, "--format", "json").stdout.splitlines()]
    assert records[0]["name"] == "BLEU" and records[0]["score"] == round(expected.score, 4)


def test_cli_sentence_mode_writes_one_line_per_hypothesis(files):
    result = nlm("bleu", *files, "--sentence", "--metrics", "bleu,chrf")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 2 for line in lines)
    assert "BLEU|nrefs:2" in result.stderr


def test_cli_bad_input_exit_codes(files, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("only one line\n")
    mismatch = nlm("bleu", files[0], str(short))
    assert mismatch.exit_code == 65 and "has 1 lines" in mismatch.stderr
    missing = nlm("bleu", files[0], str(tmp_path / "absent.txt"))
    assert missing.exit_code == 66 and "no such file" in missing.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert nlm("bleu", str(empty), files[1]).exit_code == 65
    assert nlm("bleu", *files, "--metrics", "meteor").exit_code == 2

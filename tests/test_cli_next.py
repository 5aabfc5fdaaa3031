"""`nlm next`, `nlm generate --beam`, the comparable measures of `nlm perplexity`, and BOM and CRLF input."""

from __future__ import annotations

import json
import math

import pytest
from cli_helpers import nlm, one_line_error
from lm_helpers import HEADS, SOURCE, session_root, tiny_word_lm, train_tiny_lm, write_corpus


@pytest.fixture(scope="module", params=sorted(HEADS))
def run_dir(request, tmp_path_factory):
    return tiny_word_lm(tmp_path_factory, request.param)


def rows(stdout: str) -> tuple[list[str], list[list[str]]]:
    header, *body = stdout.splitlines()
    return header.split("\t"), [line.split("\t") for line in body]


def test_next_lists_the_top_tokens_of_each_context_in_order(run_dir):
    contexts = [SOURCE.words[0], "", f"{SOURCE.words[1]} {SOURCE.words[2]}"]
    result = nlm("next", "-m", run_dir, "--top", "4", input="\n".join(contexts) + "\n")
    assert result.exit_code == 0, result.stderr
    header, body = rows(result.stdout)
    assert header == ["context_index", "rank", "token", "logprob", "prob"]
    assert [(int(r[0]), int(r[1])) for r in body] == [(c, k) for c in (1, 2, 3) for k in (1, 2, 3, 4)]
    for r in body:
        assert float(r[4]) == pytest.approx(math.exp(float(r[3])), abs=1e-4)
    as_argument = nlm("next", "-m", run_dir, "--top", "4", contexts[2])
    assert rows(as_argument.stdout)[1] == [["1", *r[1:]] for r in body[8:]]


def test_next_probabilities_over_the_whole_vocabulary_sum_to_one(run_dir):
    result = nlm("next", "-m", run_dir, "--top", "1000", "--format", "json", SOURCE.words[3])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 16  # the tiny vocabulary, specials included
    assert math.fsum(r["prob"] for r in records) == pytest.approx(1.0, abs=1e-5)
    assert [r["rank"] for r in records] == list(range(1, 17))


def test_next_warns_once_about_unknown_context_words_and_refuses_nothing_to_condition_on(run_dir):
    result = nlm("next", "-m", run_dir, "--top", "2", input="quux a\nzork b\n")
    assert result.exit_code == 0 and result.stderr.count("warning:") == 1 and "context 1" in result.stderr
    one_line_error(nlm("next", "-m", run_dir, "--no-start", ""), 65, "nothing to condition on")
    one_line_error(nlm("next", "-m", run_dir, input=""), 65, "no context")


def test_next_names_the_tokens_of_a_char_model_pieces(tmp_path_factory):
    char = train_tiny_lm(session_root(tmp_path_factory), "char", level="char")
    result = nlm("next", "-m", char, "--top", "3", SOURCE.words[0][:3])
    header, body = rows(result.stdout)
    assert header[2] == "piece" and all(len(r[2]) == 1 for r in body)


def test_beam_one_is_greedy_and_beam_outputs_carry_their_log_probs(run_dir):
    prompts = "\n".join([SOURCE.words[0], "", SOURCE.words[5]]) + "\n"
    common = ["generate", "-m", run_dir, "--prompts", "-", "--max-tokens", "10"]
    greedy = nlm(*common, "--greedy", "--format", "json", input=prompts)
    beam_one = nlm(*common, "--beam", "1", "--format", "json", input=prompts)
    assert beam_one.exit_code == 0, beam_one.stderr
    strip = [{k: v for k, v in json.loads(line).items() if k != "logprob"} for line in greedy.stdout.splitlines()]
    assert strip == [
        {k: v for k, v in json.loads(line).items() if k != "logprob"} for line in beam_one.stdout.splitlines()
    ]
    beam = nlm(*common, "--beam", "4", "--num", "2", "--format", "json", input=prompts)
    records = [json.loads(line) for line in beam.stdout.splitlines()]
    assert [(r["prompt"], r["sample"]) for r in records] == [(p, s) for p in (1, 2, 3) for s in (1, 2)]
    assert all(r["logprob"] < 0 for r in records) and "seed" not in beam.stderr
    assert nlm(*common, "--beam", "4", "--num", "2", "--format", "json", input=prompts).stdout == beam.stdout
    sampled = nlm(*common, "--seed", "3", "--format", "json", input=prompts)
    assert all("logprob" in json.loads(line) for line in sampled.stdout.splitlines())


@pytest.mark.parametrize(
    "options, words",
    [(["--beam", "2", "--num", "3"], "--num 3"), (["--beam", "2", "--top-p", "0.9"], "does not sample")],
)
def test_contradictory_beam_options_are_one_line_errors(run_dir, options, words):
    one_line_error(nlm("generate", "-m", run_dir, "--prompt", "a", *options), 2, words)


def test_perplexity_reports_bits_per_byte_and_word_perplexity(run_dir, tmp_path_factory):
    _, valid = write_corpus(session_root(tmp_path_factory) / "corpus")
    for protocol in ("stream", "sentence"):
        result = nlm("perplexity", "-m", run_dir, valid, "--protocol", protocol, "--format", "json")
        record = json.loads(result.stdout)
        assert record["bits_per_byte"] == pytest.approx(
            record["loss"] * record["tokens"] / math.log(2) / record["bytes"]
        )
        assert record["word_ppl"] == pytest.approx(record["score"], rel=1e-4)  # a word model, no OOV
        assert record["words"] == record["tokens"]
        text = nlm("perplexity", "-m", run_dir, valid, "--protocol", protocol).stdout
        assert f"bits per byte {record['bits_per_byte']:.4f} ({record['bytes']:,} bytes)" in text


def test_a_byte_order_mark_and_crlf_change_nothing_from_stdin_or_a_file(run_dir, tmp_path):
    lines = SOURCE.sample(5, seed=17)
    plain = "".join(f"{line}\n" for line in lines).encode()
    expected = nlm("score", "-m", run_dir, "-q", input=plain).stdout
    for variant in (b"\xef\xbb\xbf" + plain, plain.replace(b"\n", b"\r\n")):
        assert nlm("score", "-m", run_dir, "-q", input=variant).stdout == expected
        (tmp_path / "text.txt").write_bytes(variant)
        assert nlm("score", "-m", run_dir, "-q", tmp_path / "text.txt").stdout == expected
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + plain)
    built = nlm("vocab", "build", "--level", "char", tmp_path / "bom.txt", "-o", tmp_path / "chars.vocab")
    assert built.exit_code == 0, built.stderr
    assert "\ufeff" not in (tmp_path / "chars.vocab").read_text(encoding="utf-8")

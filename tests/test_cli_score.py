"""`nlm score`, `perplexity`, `generate` and `evaluate` through the real Typer app: output, order, exit codes."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from cli_helpers import nlm, nlm_popen, one_line_error
from conftest import killed_after
from lm_helpers import SOURCE, session_root, write_corpus

from nlm.io.checkpoint import save_checkpoint


@pytest.fixture(scope="session")
def text(tmp_path_factory):
    """A 50-line file with an empty line and an unknown word."""
    lines = SOURCE.sample(50, seed=31)
    lines[7] = ""
    lines[12] += " xyzzy"
    path = session_root(tmp_path_factory) / "fifty.txt"
    path.write_text("".join(line + "\n" for line in lines))
    return path, lines


def test_score_writes_one_tsv_row_per_line_and_the_summary_on_stderr(lm_run, text):
    path, lines = text
    result = nlm("score", "-m", str(lm_run), str(path))
    assert result.exit_code == 0, result.stderr
    rows = [row.split("\t") for row in result.stdout.splitlines()]
    assert len(rows) == len(lines) and all(len(row) == 4 for row in rows)
    assert [int(row[1]) for row in rows] == [len(line.split()) + 1 for line in lines]
    assert rows[7][1:3] == ["1", "0"] and rows[12][2] == "1"
    for logprob, tokens, _, ppl in rows:
        assert float(ppl) == pytest.approx(math.exp(-float(logprob) / int(tokens)), rel=1e-3)
    assert "signature: nlm-score|model:best.pt#" in result.stderr and "start:<eos>|eos:yes" in result.stderr
    assert "perplexity:" in result.stderr and "excluding OOVs" in result.stderr
    assert "signature" not in result.stdout


def test_score_reads_stdin_and_equals_the_file_run_at_any_batch_size(lm_run, text):
    path, lines = text
    from_file = nlm("score", "-m", str(lm_run), str(path), "-q").stdout
    piped = nlm("score", "-m", str(lm_run), "-", "-q", "--batch-size", "1", input=path.read_bytes())
    assert piped.exit_code == 0 and piped.stderr == ""
    for a, b in zip(from_file.splitlines(), piped.stdout.splitlines(), strict=True):
        assert float(a.split("\t")[0]) == pytest.approx(float(b.split("\t")[0]), abs=2e-4)


def test_jsonl_with_text_and_base_two(lm_run, text):
    path, lines = text
    natural = [
        json.loads(r)
        for r in nlm("score", "-m", str(lm_run), str(path), "--format", "json", "--with-text").stdout.splitlines()
    ]
    bits = [
        json.loads(r)
        for r in nlm("score", "-m", str(lm_run), str(path), "--format", "json", "--base", "2").stdout.splitlines()
    ]
    assert [r["text"] for r in natural] == lines
    assert set(bits[0]) == {"logprob", "tokens", "oovs", "ppl"}
    for n, b in zip(natural, bits):
        assert b["logprob"] == pytest.approx(n["logprob"] / math.log(2), abs=1e-5)
        assert b["ppl"] == pytest.approx(n["ppl"], rel=1e-6)
    summary = nlm("score", "-m", str(lm_run), str(path), "--base", "2").stderr
    assert "log-prob (base 2)" in summary and "|base:2" in summary


def test_per_token_rows_add_up_to_the_sentence_rows(lm_run, text):
    path, lines = text
    sentences = [float(r.split("\t")[0]) for r in nlm("score", "-m", str(lm_run), str(path), "-q").stdout.splitlines()]
    tokens = [
        r.split("\t") for r in nlm("score", "-m", str(lm_run), str(path), "-q", "--per-token").stdout.splitlines()
    ]
    assert len(tokens) == sum(len(line.split()) + 1 for line in lines)
    assert tokens[0][:3] == ["1", "1", lines[0].split()[0]]
    totals = [0.0] * len(lines)
    for number, _, _, logprob in tokens:
        totals[int(number) - 1] += float(logprob)
    assert totals == pytest.approx(sentences, abs=1e-3)
    assert [row[2] for row in tokens if row[0] == "13"][-2:] == ["<unk>", "<eos>"]


def test_unbuffered_streams_each_answer_before_the_input_ends(lm_run):
    process = nlm_popen(
        "score", "-m", lm_run, "--unbuffered", "-q", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    with killed_after(process, 120):
        process.stdin.write(SOURCE.words[0] + "\n")
        process.stdin.flush()
        first = process.stdout.readline()  # arrives while stdin is still open
        assert len(first.split("\t")) == 4
        process.stdin.write(SOURCE.words[1] + "\n")
        process.stdin.close()
        assert len(process.stdout.readlines()) == 1
        assert process.wait(timeout=60) == 0


def test_a_closed_pipe_ends_quietly(lm_run, text):
    path, _ = text
    command = f"'{sys.executable}' -m nlm score -m '{lm_run}' '{path}' '{path}' '{path}' | head -2"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "Error" not in done.stderr
    assert done.returncode in (0, 141)  # 141: killed by SIGPIPE, as `yes | head` is


def test_bad_inputs_give_clear_errors_and_exit_codes(lm_run, text, tmp_path):
    path, lines = text
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\x00\x01\x02garbage")
    result = nlm("score", "-m", str(lm_run), str(binary))
    assert result.exit_code == 65 and "NUL byte" in result.stderr
    undecodable = tmp_path / "latin1.txt"
    undecodable.write_bytes(f"{lines[0]}\n{lines[1]}\ncaf\xe9\n".encode("latin-1"))
    result = nlm("score", "-m", str(lm_run), str(undecodable), "-q")
    assert result.exit_code == 65 and "latin1.txt:3: not valid UTF-8" in result.stderr
    assert len(result.stdout.splitlines()) == 2  # the lines before the bad one are scored
    result = nlm("score", "-m", str(lm_run), str(tmp_path / "absent.txt"))
    assert result.exit_code == 66 and "no such file" in result.stderr
    result = nlm("score", "-m", str(tmp_path / "no-run"), str(path))
    assert result.exit_code == 66
    vision = tmp_path / "vision.pt"
    save_checkpoint(vision, {"kind": "vision", "config": {}, "model": {}})
    result = nlm("score", "-m", str(vision), str(path))
    assert result.exit_code == 65 and "holds a vision model" in result.stderr
    assert nlm("score", "-m", str(lm_run), str(path), "--per-token", "--per-word").exit_code == 2
    assert nlm("score", "-m", str(lm_run), str(path), "--batch-size", "0").exit_code == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = nlm("score", "-m", str(lm_run), str(empty))
    assert result.exit_code == 65 and result.stdout == "" and "is empty: nothing to score" in result.stderr


def test_perplexity_prints_the_number_with_its_protocol(lm_run, tmp_path_factory, monkeypatch):
    _, valid = write_corpus(session_root(tmp_path_factory) / "corpus")
    monkeypatch.setenv("NLM_CACHE_DIR", str(session_root(tmp_path_factory) / "cache"))
    stream = nlm("perplexity", "-m", str(lm_run), str(valid), "--format", "json")
    assert stream.exit_code == 0, stream.stderr
    record = json.loads(stream.stdout)
    best = torch.load(lm_run / "best.pt", weights_only=True)["metrics"]
    assert record["protocol"] == "stream" and record["loss"] == pytest.approx(best["loss"], abs=1e-5)
    sentence = nlm("perplexity", "-m", str(lm_run), str(valid), "--protocol", "sentence")
    assert sentence.stdout.startswith("PPL|protocol:sentence|model:best.pt#")
    scored = nlm("score", "-m", str(lm_run), str(valid)).stderr
    expected = next(line for line in scored.splitlines() if line.startswith("perplexity:")).split()[1]
    assert f"= {expected} " in sentence.stdout


def test_generate_reads_prompts_from_stdin_in_order_and_reproduces_with_a_seed(lm_run):
    prompts = [SOURCE.words[0], SOURCE.words[3] + " " + SOURCE.words[4], SOURCE.words[7]]
    args = [
        "generate",
        "-m",
        str(lm_run),
        "--prompts",
        "-",
        "--sample",
        "--num",
        "2",
        "--seed",
        "4",
        "--max-tokens",
        "12",
    ]
    first = nlm(*args, input="\n".join(prompts) + "\n")
    assert first.exit_code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 6
    assert all(line.startswith(prompts[i // 2]) for i, line in enumerate(lines))
    assert nlm(*args, input="\n".join(prompts) + "\n").stdout == first.stdout
    greedy = nlm("generate", "-m", str(lm_run), "--prompt", prompts[0])  # greedy by default, as `nlm evaluate`
    assert (
        greedy.stdout == nlm("generate", "-m", str(lm_run), "--prompt", prompts[0], "--sample", "--top-k", "1").stdout
    )
    assert greedy.stdout == nlm("generate", "-m", str(lm_run), "--prompt", prompts[0], "--greedy").stdout
    unseeded = nlm("generate", "-m", str(lm_run), "--prompt", prompts[0], "--sample")
    assert "sampling with seed" in unseeded.stderr
    one_line_error(nlm("generate", "-m", str(lm_run), "--prompt", prompts[0], "--top-p", "0.9"), 2, "add --sample")


def test_generate_warns_about_unknown_prompt_words_and_refuses_two_prompt_sources(lm_run):
    result = nlm("generate", "-m", str(lm_run), "--prompt", "quux " + SOURCE.words[0], "--greedy", "--format", "json")
    assert result.exit_code == 0
    assert "warning: prompt 1 has 1 symbol(s) outside the vocabulary" in result.stderr
    record = json.loads(result.stdout)
    assert record["text"].startswith("quux " + SOURCE.words[0]) and record["prompt"] == 1
    both = nlm("generate", "-m", str(lm_run), "--prompt", "a", "--prompts", "-")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_evaluate_reports_bleu_chrf_and_perplexity(lm_run, tmp_path):
    references = SOURCE.sample(10, seed=41)
    prompts, refs = tmp_path / "prompts.txt", tmp_path / "refs.txt"
    prompts.write_text("".join(" ".join(r.split()[:2]) + "\n" for r in references))
    refs.write_text("".join(r + "\n" for r in references))
    result = nlm("evaluate", "-m", str(lm_run), "--prompts", str(prompts), "--refs", str(refs), "--format", "json")
    assert result.exit_code == 0, result.stderr
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert names == ["BLEU", "chrF2", "PPL"]
    refs.write_text("".join(r + "\n" for r in references[:9]))
    mismatch = nlm("evaluate", "-m", str(lm_run), "--prompts", str(prompts), "--refs", str(refs))
    assert mismatch.exit_code == 65 and "has 9 lines" in mismatch.stderr


def test_generate_and_evaluate_continue_alike_and_bleu_of_the_continuations_is_evaluates(lm_run, tmp_path):
    """The same defaults give the same continuations; `--continuation-only` writes what `evaluate` compares, so
    `nlm bleu` against the references' continuations gives evaluate's BLEU."""
    references = SOURCE.sample(10, seed=43)
    prompts, refs, kept = tmp_path / "prompts.txt", tmp_path / "refs.txt", tmp_path / "kept.txt"
    prompts.write_text("".join(" ".join(r.split()[:2]) + "\n" for r in references))
    refs.write_text("".join(r + "\n" for r in references))
    evaluated = nlm("evaluate", "-m", lm_run, "--prompts", prompts, "--refs", refs, "--hyps", kept, "--format", "json")
    assert evaluated.exit_code == 0, evaluated.stderr
    generated = nlm("generate", "-m", lm_run, "--prompts", prompts)
    assert generated.stdout == kept.read_text()
    alone = nlm("generate", "-m", lm_run, "--prompts", prompts, "--continuation-only").stdout.splitlines()
    joined = [f"{p} {c}".rstrip() for p, c in zip(prompts.read_text().splitlines(), alone)]  # c "": ended at once
    assert joined == kept.read_text().splitlines()
    hyps, targets = tmp_path / "hyps.txt", tmp_path / "targets.txt"
    hyps.write_text("".join(line + "\n" for line in alone))
    targets.write_text("".join(" ".join(r.split()[2:]) + "\n" for r in references))
    scored = nlm("bleu", hyps, targets, "--format", "json")
    assert scored.exit_code == 0, scored.stderr
    bleu = json.loads(scored.stdout.splitlines()[0])
    assert bleu["score"] == json.loads(evaluated.stdout.splitlines()[0])["score"]


@pytest.mark.parametrize(
    "old, new",
    [
        (["score", "--format", "jsonl"], ["score", "--format", "json"]),
        (["perplexity", "--json"], ["perplexity", "--format", "json"]),
        (["perplexity", "--format", "table"], ["perplexity", "--format", "text"]),
    ],
)
def test_the_old_spellings_of_the_formats_still_read_as_the_new(lm_run, text, old, new):
    results = [nlm(command, "-m", lm_run, text[0], *options) for command, *options in (old, new)]
    assert [r.exit_code for r in results] == [0, 0], results[0].stderr
    assert results[0].stdout == results[1].stdout

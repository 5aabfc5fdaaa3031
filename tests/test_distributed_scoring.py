"""`nlm score` and `nlm perplexity --protocol sentence` as two processes with gloo on the CPU: each scores its share of
the lines, and the output file holds, byte for byte, what one process writes; the summary is summed over them; a
missing input, stdin or a missing -o stop every process with one line from rank 0; a rank killed with SIGKILL makes
torchrun fail and leaves no output file.  Also `-o FILE` in one process."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from pathlib import Path

import pytest
from cli_helpers import nlm, one_line_error
from distributed_helpers import TIMEOUT, ranks, torchrun
from lm_helpers import SOURCE, session_root, tiny_word_lm

from nlm.lm.distributed_scoring import part_path, shares


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_word_lm(tmp_path_factory, "full")


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """51 lines (uneven shares), with an empty line and an unknown word, gzipped."""
    lines = SOURCE.sample(51, seed=17)
    lines[3], lines[30] = "", lines[30] + " xyzzy"
    path = session_root(tmp_path_factory) / "fifty-one.txt.gz"
    path.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode()))
    return path


def test_shares_are_contiguous_in_rank_order_and_rank_zero_has_lines():
    assert shares(51, 2) == [(0, 26), (26, 51)]
    assert shares(1, 3) == [(0, 1), (1, 1), (1, 1)]
    assert shares(7, 3) == [(0, 3), (3, 5), (5, 7)]


def summary(stderr: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stderr.splitlines() if ": " in line)


@pytest.mark.parametrize("extra", [[], ["--per-token", "--format", "json"]], ids=["rows", "per-token"])
def test_two_processes_write_the_bytes_one_process_writes(tmp_path, run_dir, text, extra):
    alone = nlm("score", "-m", run_dir, text, *extra, "--batch-size", "4")
    assert alone.exit_code == 0, alone.stderr
    (code0, err0), (code1, err1) = ranks(
        "score", "-m", run_dir, text, *extra, "--batch-size", "4", "-o", tmp_path / "o"
    )
    assert (code0, code1) == (0, 0), err0 + err1
    assert (tmp_path / "o").read_text() == alone.stdout
    assert sorted(os.listdir(tmp_path)) == ["o"]  # the parts are gone
    one, two = summary(alone.stderr), summary(err0)
    assert err0.splitlines()[0] == alone.stderr.splitlines()[0]  # sentences, tokens, OOVs
    assert err0.startswith("sentences: 51 ") and "OOVs: 1" in err0
    assert float(two["log-prob (base e)"]) == pytest.approx(float(one["log-prob (base e)"]), abs=1e-3)
    assert two["signature"] == one["signature"] and err1 == ""


def test_perplexity_of_the_sentence_protocol_is_summed_over_the_processes(tmp_path, run_dir, text):
    alone = json.loads(nlm("perplexity", "-m", run_dir, text, "--protocol", "sentence", "--format", "json").stdout)
    (code0, err0), (code1, _) = ranks(
        "perplexity", "-m", run_dir, text, "--protocol", "sentence", "--format", "json", "-o", tmp_path / "p.json"
    )
    assert (code0, code1) == (0, 0), err0
    two = json.loads((tmp_path / "p.json").read_text())
    for key in ("tokens", "text_tokens", "oovs", "bytes", "words", "signature", "description"):
        assert two[key] == alone[key], key
    for key in ("score", "loss", "bits_per_byte", "word_ppl"):
        assert two[key] == pytest.approx(alone[key], rel=1e-6), key
    stream = ranks("perplexity", "-m", run_dir, text, "-o", tmp_path / "s.txt")
    assert [code for code, _ in stream] == [2, 2] and "--protocol sentence" in stream[0][1] and stream[1][1] == ""


@pytest.mark.parametrize(
    "case",
    ["missing input", "stdin", "no -o"],
)
def test_what_cannot_be_shared_stops_every_rank_with_one_line_from_rank_zero(tmp_path, run_dir, text, case):
    args = {
        "missing input": [tmp_path / "missing.txt", "-o", tmp_path / "o"],
        "stdin": ["-o", tmp_path / "o"],
        "no -o": [text],
    }[case]
    (code0, err0), (code1, err1) = ranks("score", "-m", run_dir, *args)
    expected = {"missing input": (66, "missing.txt: no such file"), "stdin": (2, "not stdin"), "no -o": (2, "-o FILE")}
    assert (code0, code1) == (expected[case][0],) * 2
    assert err0.startswith("nlm: error: ") and err0.count("\n") == 1 and expected[case][1] in err0, err0
    assert err1 == "" and not (tmp_path / "o").exists()


def test_a_rank_killed_with_sigkill_makes_torchrun_fail_and_leaves_no_output(tmp_path, run_dir):
    big = tmp_path / "big.txt"
    big.write_text("".join(line + "\n" for line in SOURCE.sample(20_000, seed=3)))
    out = tmp_path / "scores.tsv"
    launcher = torchrun("score", "-m", run_dir, big, "-o", out, "--batch-size", "1", "-q")
    try:
        victim = _worker(launcher.pid, rank=1, part=part_path(out, 1, 2))
        os.kill(victim, signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=TIMEOUT)
    finally:
        launcher.kill()
    assert launcher.returncode != 0, stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".scores")] == [], stderr


def _worker(launcher: int, *, rank: int, part: Path) -> int:
    """The pid of the launcher's worker of `rank`, once it has started writing its part."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if part.exists():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == launcher and f"RANK={rank}".encode() in environ:
                    return int(pid)
        time.sleep(0.05)
    raise AssertionError("the worker never started scoring")


def test_one_process_writes_its_output_file_whole_or_not_at_all(tmp_path, run_dir, text):
    out = tmp_path / "scores.tsv"
    assert nlm("score", "-m", run_dir, text, "-o", out).exit_code == 0
    assert out.read_text() == nlm("score", "-m", run_dir, text).stdout
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    one_line_error(nlm("score", "-m", run_dir, bad, "-o", tmp_path / "none.tsv"), 65, "bad.txt:2: not valid UTF-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "scores.tsv"]
    one_line_error(nlm("score", "-m", run_dir, out, "-o", out), 73, "is also an input")
    ppl = tmp_path / "ppl.txt"
    assert nlm("perplexity", "-m", run_dir, text, "-o", ppl).stdout == ""
    assert ppl.read_text() == nlm("perplexity", "-m", run_dir, text).stdout

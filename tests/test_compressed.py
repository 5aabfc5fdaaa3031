"""Compressed corpora read as they are: gzip, bzip2 and xz, known by their first bytes, through every command that
reads text; a truncated archive is one line naming the file (65), after what was read before it."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os

import pytest
from cli_helpers import nlm, one_line_error
from lm_helpers import SOURCE, session_root, tiny_word_lm

from nlm.errors import DataError
from nlm.io.compressed import detect
from nlm.io.text import file_sha256, read_lines

COMPRESSORS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}
TEXT = "the first line\n\ufeffnot a BOM here\nd\u00e9j\u00e0 vu\r\n\nlast line without an end"
LINES = ["the first line", "\ufeffnot a BOM here", "d\u00e9j\u00e0 vu", "", "last line without an end"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_word_lm(tmp_path_factory, "full")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """60 sentences of the tiny model's language, plain and in each format."""
    folder = session_root(tmp_path_factory) / "compressed"
    folder.mkdir(exist_ok=True)
    text = "".join(line + "\n" for line in SOURCE.sample(60, seed=41)).encode()
    (folder / "plain.txt").write_bytes(text)
    for suffix, compress in COMPRESSORS.items():
        (folder / f"text.{suffix}").write_bytes(compress(text))
    return folder


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_each_format_reads_as_its_text(tmp_path, suffix):
    path = tmp_path / f"t.txt.{suffix}"
    path.write_bytes(COMPRESSORS[suffix](TEXT.encode()))
    assert list(read_lines(path)) == LINES
    assert file_sha256(path, text=True) == file_sha256_of_bytes(tmp_path, TEXT.encode())
    assert file_sha256(path) != file_sha256(path, text=True)  # without `text`: the file's own bytes


def file_sha256_of_bytes(folder, data: bytes) -> str:
    plain = folder / "plain"
    plain.write_bytes(data)
    return file_sha256(plain)


def test_the_first_bytes_decide_not_the_name(tmp_path):
    assert [detect(b"\x1f\x8b\x08"), detect(b"BZh9"), detect(b"\xfd7zXZ\x00\x00"), detect(b"BZ plain")] == [
        "gzip",
        "bzip2",
        "xz",
        None,
    ]
    disguised, honest = tmp_path / "corpus.txt", tmp_path / "corpus.txt.gz"
    disguised.write_bytes(gzip.compress(TEXT.encode()))
    honest.write_text(TEXT)  # a plain file named .gz is read as the text it is
    assert list(read_lines(disguised)) == list(read_lines(honest)) == LINES


def test_concatenated_members_read_as_one_text(tmp_path):
    path = tmp_path / "joined.gz"
    path.write_bytes(gzip.compress(b"one\ntwo\n") + gzip.compress(b"three\n"))
    assert list(read_lines(path)) == ["one", "two", "three"]


def test_a_truncated_archive_names_the_file_and_the_line_after_the_lines_before_it(tmp_path):
    text = "".join(f"line {i} of a corpus long enough to span several buffers\n" for i in range(40_000)).encode()
    path = tmp_path / "cut.xz"
    whole = lzma.compress(text)
    path.write_bytes(whole[: len(whole) * 3 // 4])
    read = []
    with pytest.raises(DataError) as error:
        read.extend(read_lines(path))
    assert 0 < len(read) < 40_000 and read == [
        f"line {i} of a corpus long enough to span several buffers" for i in range(len(read))
    ]
    assert str(error.value).startswith(f"{path}:{len(read) + 1}: truncated or corrupt xz data")
    assert error.value.exit_code == 65


def test_corrupt_data_is_a_one_line_error_for_a_command(tmp_path, run_dir):
    path = tmp_path / "bad.gz"
    data = bytearray(gzip.compress(TEXT.encode() * 50))
    data[20:40] = bytes(20)  # the deflate stream, not the header
    path.write_bytes(bytes(data))
    one_line_error(nlm("score", "-m", run_dir, path), 65, f"{path}:1: truncated or corrupt gzip data")
    one_line_error(nlm("vocab", "build", path, "-o", tmp_path / "v.txt"), 65, "truncated or corrupt gzip data")
    assert not (tmp_path / "v.txt").exists()


def test_score_writes_the_rows_before_a_truncated_archive(tmp_path, run_dir):
    lines = SOURCE.sample(6000, seed=5)
    data = gzip.compress("".join(line + "\n" for line in lines).encode())
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    result = nlm("score", "-m", run_dir, path, "--batch-size", "8", "-q")
    assert result.exit_code == 65 and "Traceback" not in result.stderr
    written = len(result.stdout.splitlines())
    assert 0 < written < len(lines), written
    assert result.stderr.startswith(f"nlm: error: {path}:") and "truncated or corrupt gzip data" in result.stderr


def test_scoring_commands_read_each_format_as_the_plain_text(run_dir, corpus):
    plain = corpus / "plain.txt"
    expected = nlm("score", "-m", run_dir, plain).stdout
    expected_ppl = nlm("perplexity", "-m", run_dir, plain, "--format", "json").stdout
    for suffix in COMPRESSORS:
        path = corpus / f"text.{suffix}"
        assert nlm("score", "-m", run_dir, path).stdout == expected
        assert nlm("perplexity", "-m", run_dir, path, "--format", "json").stdout == expected_ppl
    piped = nlm("score", "-m", run_dir, input=(corpus / "text.bz2").read_bytes())
    assert piped.exit_code == 0 and piped.stdout == expected


def test_the_corpus_cache_keys_on_the_decompressed_text(run_dir, corpus, tmp_path):
    cache = tmp_path / "cache"
    env = {"NLM_CACHE_DIR": str(cache)}
    before = os.environ.copy()
    os.environ.update(env)
    try:
        nlm("perplexity", "-m", run_dir, corpus / "plain.txt")
        entries = sorted(p.name for p in cache.iterdir())
        for suffix in COMPRESSORS:
            nlm("perplexity", "-m", run_dir, corpus / f"text.{suffix}")
    finally:
        os.environ.clear()
        os.environ.update(before)
    assert len(entries) == 3 and sorted(p.name for p in cache.iterdir()) == entries  # one entry: ids, ends, json


def test_vocab_train_generate_next_and_bleu_read_compressed_files(tmp_path, corpus):
    built = {}
    for name in ("plain.txt", "text.xz"):
        out = tmp_path / f"{name}.vocab"
        assert nlm("vocab", "build", corpus / name, "-o", out, "--check", corpus / "text.gz").exit_code == 0
        built[name] = out.read_text()
    assert built["plain.txt"] == built["text.xz"]
    run = tmp_path / "run"
    trained = nlm(
        "train", "--train", corpus / "text.gz", "--valid", corpus / "text.bz2", "-o", run, "--hidden", "8",
        "--layers", "1", "--max-steps", "3", "--batch-size", "4", "--bptt", "8", "--device", "cpu", "-q",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    prompts = tmp_path / "prompts.gz"
    prompts.write_bytes(gzip.compress(b"a\nb\n"))
    generated = nlm("generate", "-m", run, "--prompts", prompts, "--greedy", "--max-tokens", "3")
    assert generated.exit_code == 0 and len(generated.stdout.splitlines()) == 2
    following = nlm("next", "-m", run, "--top", "2", input=gzip.compress(b"a\nb\n"))
    assert following.exit_code == 0 and len(following.stdout.splitlines()) == 1 + 2 * 2
    hyps, refs = tmp_path / "hyps.bz2", tmp_path / "refs.txt"
    hyps.write_bytes(bz2.compress(b"the cat sat\na dog ran\n"))
    refs.write_text("the cat sat down\na dog ran off\n")
    plain_hyps = tmp_path / "hyps.txt"
    plain_hyps.write_text("the cat sat\na dog ran\n")
    assert nlm("bleu", hyps, refs).stdout == nlm("bleu", plain_hyps, refs).stdout != ""

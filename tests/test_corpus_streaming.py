"""Corpora that do not fit in memory: vocabularies and token caches built from a stream of lines.

Memory is checked with tracemalloc (Python's own allocations, numpy's included): a bound
that holding every line or every id would exceed, never a timing.
"""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import sentencepiece as spm
from cli_helpers import nlm

from nlm.io.text import TextFiles, read_lines
from nlm.text.build import VocabConfig, build_vocab, measure_coverage
from nlm.text.corpus import encode_corpus
from nlm.text.symbols import BOS, EOS, PAD, SPECIALS, UNK

WORDS = "the river runs past a market where old boats rest every morning and night".split()


def sentences(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 15))) for _ in range(count)]


def write(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def peak_bytes(work) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def pieces_and_scores(vocab) -> list[tuple[str, float]]:
    p = vocab.processor
    return [(p.id_to_piece(i), p.get_score(i)) for i in range(p.get_piece_size())]


@pytest.mark.parametrize("level", ["bpe", "unigram"])
def test_streamed_subword_vocabulary_equals_sentencepiece_trained_on_all_lines_in_memory(level, tmp_path):
    lines = sentences(400) + ["", "   ", "a line with zebras and quokkas"]
    path = write(tmp_path / "train.txt", lines)
    config = VocabConfig(level=level, size=30)
    # the reference: sentencepiece given every line at once, as nlm called it before it streamed
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type=level,
        vocab_size=34,
        character_coverage=0.9995,
        normalization_rule_name="nmt_nfkc",
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        pad_piece=SPECIALS[PAD],
        unk_piece=SPECIALS[UNK],
        bos_piece=SPECIALS[BOS],
        eos_piece=SPECIALS[EOS],
        num_threads=1,
        minloglevel=2,
    )
    reference = spm.SentencePieceProcessor(model_proto=model.getvalue())
    expected = [(reference.id_to_piece(i), reference.get_score(i)) for i in range(reference.get_piece_size())]
    from_files, report = build_vocab(TextFiles((str(path),)), config=config)
    from_a_generator, again = build_vocab(read_lines(path), config=config)  # read once, copied to a temporary file
    assert pieces_and_scores(from_files) == pieces_and_scores(from_a_generator) == expected
    assert from_files.model == model.getvalue()  # byte for byte, so fingerprints and cache keys stay as they were
    assert report == again and report.sample is None  # 402 lines with text: below the sample size, all used
    assert report.training.tokens == sum(len(reference.encode(line)) for line in lines)


def test_sentencepiece_trains_on_a_sample_and_coverage_counts_every_line():
    # each line carries one character of its own;
    # with coverage 1.0 the alphabet is exactly the sampled lines' characters
    rare = [chr(0x4E00 + i) for i in range(600)]
    lines = [f"the river {c}" for c in rare]
    config = VocabConfig(level="bpe", size=170, character_coverage=1.0, sample_lines=150)
    vocab, report = build_vocab(lines, config=config)
    known = [c for c in rare if vocab.processor.piece_to_id(c) != UNK]
    assert len(known) == 150 and report.sample == (150, 600)
    assert report.training.oov_tokens == 450  # the other lines' characters are measured, as <unk>
    everything, full = build_vocab(lines, config=config.replace(size=620, sample_lines=0))
    assert all(everything.processor.piece_to_id(c) != UNK for c in rare) and full.sample is None


def line_by_line_coverage(vocab, lines: list[str]) -> tuple[int, int, int, int, int]:
    """The count nlm made line by line before it read in batches, kept as the reference: a type is a
    distinct token text (an unknown subword piece as its surface characters)."""
    tokens = oov = 0
    types, oov_types = set(), set()
    for line in lines:
        ids, pieces = vocab.encode(line), vocab.tokenize(line)
        tokens += len(ids)
        oov += sum(1 for i in ids if i == UNK)
        types.update(pieces)
        oov_types.update(p for p, i in zip(pieces, ids) if i == UNK)
    return tokens, oov, len(types), len(oov_types), len(lines)


@pytest.mark.parametrize(
    "level, lowercase", [("word", False), ("word", True), ("char", False), ("bpe", False), ("unigram", True)]
)
def test_coverage_read_in_batches_equals_the_line_by_line_count(level, lowercase):
    train = sentences(300)
    check = sentences(2500, seed=1) + ["The Zebra <unk> river ü", "", "quokka quokka ZEBRA"]  # more than one batch
    size = 30 if level in ("bpe", "unigram") else 8
    vocab, _ = build_vocab(
        train, config=VocabConfig(level=level, size=size, lowercase=lowercase, character_coverage=1.0)
    )
    c = measure_coverage(vocab, check)
    assert (c.tokens, c.oov_tokens, c.types, c.oov_types, c.lines) == line_by_line_coverage(vocab, check)
    assert c.oov_tokens > 0


def test_vocab_build_check_reports_the_counted_figures(tmp_path):
    write(tmp_path / "train.txt", ["a b c", "a b"])
    write(tmp_path / "valid.txt", ["a d d", "<unk> b"])
    result = nlm(
        "vocab",
        "build",
        tmp_path / "train.txt",
        "-o",
        tmp_path / "v.txt",
        "--check",
        tmp_path / "valid.txt",
    )
    assert result.exit_code == 0, result.stderr
    # 5 tokens; d, d and the literal <unk> are OOVs of 2 types
    assert (
        f"{tmp_path / 'valid.txt'}: 5 tokens without <eos> (7 with one <eos> per line, as train counts), "
        "OOV rate 60.00% (3 tokens of 2 types), coverage 40.00%"
    ) in " ".join(result.stderr.split())


def test_subword_vocabulary_from_stdin_equals_the_one_from_the_file(tmp_path):
    path = write(tmp_path / "train.txt", sentences(300))
    args = ["vocab", "build", "--level", "bpe", "--vocab-size", "30", "-o"]
    from_file = nlm(*args, tmp_path / "file.model", path)
    from_stdin = nlm(*args, tmp_path / "stdin.model", input=path.read_text())
    assert from_file.exit_code == from_stdin.exit_code == 0, from_stdin.stderr
    assert (tmp_path / "file.model").read_bytes() == (tmp_path / "stdin.model").read_bytes()
    assert from_file.stderr.replace("file.model", "v") == from_stdin.stderr.replace(
        "stdin.model", "v"
    )  # the same figures


def test_undecodable_text_is_a_data_error_while_sentencepiece_streams_it(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"good line one\ngood line two\nbad \xff line\n")
    result = nlm(
        "vocab",
        "build",
        tmp_path / "bad.txt",
        "--level",
        "bpe",
        "--vocab-size",
        "10",
        "-o",
        tmp_path / "v.model",
    )
    assert result.exit_code == 65 and "bad.txt:3: not valid UTF-8" in result.stderr
    assert not (tmp_path / "v.model").exists()


def test_blank_text_is_a_data_error_at_every_level():
    for level in ("word", "bpe"):
        with pytest.raises(Exception, match="no symbols to build a vocabulary"):
            build_vocab(iter(["", "  ", ""]), config=VocabConfig(level=level, size=10))


def test_encoding_a_corpus_holds_one_batch_of_lines_not_every_id(tmp_path):
    lines = sentences(400) * 125  # 50,000 lines, about 470,000 tokens with <eos>
    path = write(tmp_path / "big.txt", lines)
    vocab, _ = build_vocab(lines[:400], config=VocabConfig(size=10))  # 4 words become <unk>
    corpus, peak = peak_bytes(lambda: encode_corpus(path, vocab, cache_dir=tmp_path / "cache"))
    # two bytes per token: every id as int32 would take 4 (a list of them 8), and the line ends 8 per line more
    assert corpus.tokens > 400_000 and peak < 2 * corpus.tokens
    expected = [i for line in lines[:400] for i in vocab.encode(line) + [EOS]]
    assert corpus.ids[: len(expected)].tolist() == expected and corpus.ids[-len(expected) :].tolist() == expected
    assert corpus.lines == 50_000 and corpus.line_ends[-1] == corpus.tokens
    assert corpus.oovs == 125 * expected.count(UNK) > 0


@pytest.mark.parametrize("level", ["word", "bpe"])
def test_building_a_vocabulary_holds_no_copy_of_the_text(level, tmp_path):
    path = write(tmp_path / "big.txt", sentences(400) * 50)  # 20,000 lines, 0.9 MB
    config = VocabConfig(level=level, size=30 if level == "bpe" else None, sample_lines=2000)
    (vocab, report), peak = peak_bytes(lambda: build_vocab(TextFiles((str(path),)), config=config))
    # a list of the lines would take twice the text's size (a str object is 49 bytes before its characters)
    assert report.training.tokens > 150_000 and peak < 1.5 * path.stat().st_size
    if level == "bpe":
        assert report.sample == (2000, 20_000)

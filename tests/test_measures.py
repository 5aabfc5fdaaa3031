"""Bits per byte and word perplexity (nlm/lm/measures.py) for every level and protocol, and the text that
reaches a model: a byte-order mark is not part of the first token, a CRLF file reads as LF."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lm_helpers import SOURCE, session_root, tiny_word_lm, train_tiny_lm, write_corpus

from nlm.io.text import read_lines
from nlm.lm.loading import load_language_model
from nlm.lm.perplexity import corpus_perplexity
from nlm.lm.scoring import score_sentences
from nlm.text.batches import context_only, evaluation_rows
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import encode_corpus

PROTOCOLS = ("stream", "sentence")
ACCENTS = str.maketrans({"a": "á", "o": "ö", "u": "日"})  # 2- and 3-byte characters in every other word


def accented(lines: list[str]) -> str:
    return "".join(line.translate(ACCENTS) + "\n" for line in lines)


@pytest.fixture(scope="module")
def accented_files(tmp_path_factory):
    root = session_root(tmp_path_factory) / "accented"
    root.mkdir(exist_ok=True)
    train, valid = root / "train.txt", root / "valid.txt"
    train.write_text(accented(SOURCE.sample(300, seed=0)), encoding="utf-8")
    valid.write_text(accented(SOURCE.sample(40, seed=5)), encoding="utf-8")
    return train, valid


@pytest.fixture(scope="module")
def char_lm(tmp_path_factory, accented_files):
    train, valid = accented_files
    root = session_root(tmp_path_factory)
    return load_language_model(train_tiny_lm(root, "char-accented", level="char", train_file=train, valid_file=valid))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_char_models_bits_per_byte_is_its_bits_per_char_times_chars_over_bytes(char_lm, accented_files, protocol):
    _, valid = accented_files
    text = valid.read_text(encoding="utf-8")  # every line ends in "\n", the char a char model's <eos> stands for
    assert len(text.encode("utf-8")) > len(text) * 1.1  # the text has multi-byte characters
    result = corpus_perplexity(char_lm, valid, protocol=protocol)
    # The predicted characters: all of them, or (stream) all but those at the context-only positions.
    predicted = np.ones(len(text), dtype=bool)
    if protocol == "stream":
        predicted[context_only(len(text), evaluation_rows(len(text), char_lm.data_config.eval_batch_size))] = False
    chars = int(predicted.sum())
    bytes_ = sum(len(c.encode("utf-8")) for c, keep in zip(text, predicted) if keep)
    assert (result.tokens, result.bytes) == (chars, bytes_)
    bits_per_char = result.loss / math.log(2)
    assert result.bits_per_byte == pytest.approx(bits_per_char * chars / bytes_, rel=1e-12)
    assert result.bits_per_byte < bits_per_char


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_word_models_word_perplexity_is_its_token_perplexity_without_oovs(tmp_path_factory, protocol):
    lm = load_language_model(tiny_word_lm(tmp_path_factory, "full"))
    _, valid = write_corpus(session_root(tmp_path_factory) / "corpus")
    result = corpus_perplexity(lm, valid, protocol=protocol)
    assert result.oovs == 0
    assert result.words == result.tokens
    assert result.word_ppl == pytest.approx(result.ppl, rel=1e-9)
    text = valid.read_text()
    if protocol == "sentence":
        assert (result.bytes, result.words) == (len(text.encode()), len(text.split()) + text.count("\n"))


@pytest.mark.parametrize("level, size", [("bpe", 30), ("word", None)])
def test_subword_and_word_measures_cover_exactly_the_predicted_span(tmp_path_factory, accented_files, level, size):
    train, valid = accented_files
    root = session_root(tmp_path_factory)
    lm = load_language_model(train_tiny_lm(root, f"{level}-accented", level=level, size=size, train_file=train))
    stream = corpus_perplexity(lm, valid, protocol="stream")
    sentence = corpus_perplexity(lm, valid, protocol="sentence")
    text = valid.read_text(encoding="utf-8")
    assert (sentence.bytes, sentence.words) == (len(text.encode()), len(text.split()) + text.count("\n"))
    # The stream leaves out each row's first token and the tail: fewer bytes and words, never more.
    assert 0 < sentence.bytes - stream.bytes < 40 * 8 and 0 < sentence.words - stream.words <= 2 * 10
    # Every line's tokens cover its bytes exactly, <eos> taking the trailing whitespace and the newline.
    for line in ["  spaced   out  ", text.splitlines()[0], "日本", ""]:
        spans = lm.vocab.token_bytes(line)
        assert len(spans) == len(lm.vocab.encode(line)) and all(s >= 0 for s in spans)  # a bare "▁" covers 0
        assert sum(spans) <= len(line.encode()) and sum(spans) >= len(line.rstrip().encode())


def test_an_oov_counts_at_the_unk_probability_in_every_measure(tmp_path_factory):
    lm = load_language_model(tiny_word_lm(tmp_path_factory, "full"))
    lines = [SOURCE.sample(1, seed=9)[0] + " zzzunknown", SOURCE.sample(1, seed=10)[0]]
    result = corpus_perplexity(lm, lines, protocol="sentence")
    total = sum(s.logprob for s in score_sentences(lm, lines))
    assert result.oovs == 1 and result.nats == pytest.approx(-total)
    assert result.word_ppl == pytest.approx(math.exp(-total / (len(" ".join(lines).split()) + 2)))
    assert result.bits_per_byte == pytest.approx(-total / math.log(2) / len("\n".join(lines).encode() + b"\n"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_lines_given_from_python_measure_what_the_file_does(tmp_path_factory, protocol):
    lm = load_language_model(tiny_word_lm(tmp_path_factory, "full"))
    _, valid = write_corpus(session_root(tmp_path_factory) / "corpus")
    from_file = corpus_perplexity(lm, valid, protocol=protocol)
    from_lines = corpus_perplexity(lm, valid.read_text().splitlines(), protocol=protocol)
    assert (from_lines.tokens, from_lines.bytes, from_lines.words) == (
        from_file.tokens,
        from_file.bytes,
        from_file.words,
    )
    assert from_lines.nats == pytest.approx(from_file.nats, rel=1e-9)


# -- the text as read: byte-order marks and CRLF ----------------------------------------------


def test_a_byte_order_mark_is_not_part_of_the_first_token_and_crlf_scores_as_lf(tmp_path_factory, tmp_path):
    lm = load_language_model(tiny_word_lm(tmp_path_factory, "full"))
    lines = SOURCE.sample(6, seed=12)
    plain, bom, crlf = tmp_path / "plain.txt", tmp_path / "bom.txt", tmp_path / "crlf.txt"
    plain.write_bytes("".join(f"{line}\n" for line in lines).encode())
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    crlf.write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    expected = [(s.text, s.logprob, s.oovs) for s in score_sentences(lm, lines)]
    for path in (bom, crlf):
        assert [(s.text, s.logprob, s.oovs) for s in score_sentences(lm, read_lines(path))] == expected
        for protocol in PROTOCOLS:
            result, reference = (
                corpus_perplexity(lm, path, protocol=protocol),
                corpus_perplexity(lm, plain, protocol=protocol),
            )
            assert (result.nats, result.tokens, result.oovs, result.bytes) == (
                reference.nats,
                reference.tokens,
                reference.oovs,
                reference.bytes,
            )
    vocab, _ = build_vocab(list(read_lines(bom)), config=VocabConfig(level="char"))
    assert "\ufeff" not in vocab.symbols
    assert encode_corpus(bom, lm.vocab).oovs == 0

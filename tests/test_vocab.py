"""Vocabularies: top-K with deterministic ties, min-count, OOV mapping, fixed special ids, file format."""

from __future__ import annotations

import pytest

from nlm.errors import ConfigError, DataError
from nlm.text.build import Coverage, VocabConfig, build_vocab, measure_coverage
from nlm.text.symbols import BOS, EOS, PAD, SPECIALS, UNK
from nlm.text.vocab import SymbolVocab
from nlm.text.vocab_files import load_vocab, save_vocab

LINES = ["b a c a", "c b a d", "e e d b"]  # a:3 b:3 c:2 d:2 e:2


def build(level="word", **kw):
    return build_vocab(LINES, config=VocabConfig(level=level, **kw))


def test_top_k_breaks_ties_by_symbol():
    vocab, report = build(size=3)
    assert vocab.symbols == list(SPECIALS) + ["a", "b", "c"]  # c, d, e tie at 2: c wins alphabetically
    assert vocab.counts[4:] == [3, 3, 2]
    assert report.types_seen == 5 and report.types_kept == 3
    assert vocab.counts[UNK] == 4 and vocab.counts[EOS] == 3  # d, d, e, e dropped; one <eos> per line


def test_min_count_drops_rare_symbols():
    vocab, _ = build(min_count=3)
    assert vocab.symbols[4:] == ["a", "b"]


def test_oov_tokens_map_to_unk_and_are_counted():
    vocab, report = build(size=2)
    assert vocab.encode("a b zebra c") == [vocab.index["a"], vocab.index["b"], UNK, UNK]
    assert report.training.oov_tokens == 6 and report.training.tokens == 12
    coverage = measure_coverage(vocab, ["a zebra", "<unk> b"])
    assert (coverage.tokens, coverage.oov_tokens) == (4, 2)  # a literal <unk> is an OOV too


def test_char_level_keeps_spaces_and_code_points():
    vocab, _ = build_vocab(["héllo wörld"], config=VocabConfig(level="char"))
    assert " " in vocab.index and "ö" in vocab.index
    assert vocab.decode(vocab.encode("héllo wörld")) == "héllo wörld"


def test_lowercase_folds_case_when_building_and_encoding():
    vocab, _ = build_vocab(["The the THE"], config=VocabConfig(lowercase=True))
    assert vocab.symbols[4:] == ["the"] and vocab.counts[4] == 3
    assert vocab.encode("ThE") == [4]


@pytest.mark.parametrize("level", ["word", "char", "bpe", "unigram"])
def test_special_ids_are_the_same_at_every_level(level, tmp_path):
    lines = [f"line {i} of some text with words like river and market" for i in range(200)]
    vocab, _ = build_vocab(lines, config=VocabConfig(level=level, size=40 if level in ("bpe", "unigram") else None))
    assert [vocab.symbol(i) for i in (PAD, UNK, BOS, EOS)] == list(SPECIALS)
    save_vocab(vocab, tmp_path / "v")
    again = load_vocab(tmp_path / "v")
    assert again.level == level and len(again) == len(vocab) and again.fingerprint() == vocab.fingerprint()


@pytest.mark.parametrize("level", ["bpe", "unigram"])
def test_sentencepiece_round_trips_text(level):
    lines = [f"the river runs past market number {i} every morning" for i in range(300)]
    vocab, report = build_vocab(lines, config=VocabConfig(level=level, size=60))
    text = "the market runs every morning past the river"
    assert vocab.decode(vocab.encode(text)) == text
    assert report.training.oov_tokens == 0
    assert vocab.processor.pad_id() == PAD and vocab.processor.eos_id() == EOS  # usable by spm_encode as is


def test_sentencepiece_vocabulary_too_large_is_a_config_error():
    with pytest.raises(ConfigError, match="sentencepiece could not train"):
        build_vocab(["tiny text"] * 10, config=VocabConfig(level="bpe", size=5000))


def test_vocab_file_is_plain_text_with_line_number_as_id(tmp_path):
    vocab, _ = build(size=3)
    save_vocab(vocab, tmp_path / "v.txt")
    lines = (tmp_path / "v.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == vocab.symbols
    assert lines[4] == "a\t3"


def test_hand_made_word_list_loads_as_word_vocab(tmp_path):
    (tmp_path / "v.txt").write_text("<pad>\t0\n<unk>\t0\n<bos>\t0\n<eos>\t0\nhello\t5\n")
    vocab = load_vocab(tmp_path / "v.txt")
    assert isinstance(vocab, SymbolVocab) and vocab.level == "word" and vocab.encode("hello you") == [4, UNK]


@pytest.mark.parametrize(
    "content, message",
    [
        ("<pad>\t0\n<unk>\t0\n<bos>\t0\n<eos>\t0\nhello\n", ":5: malformed"),
        ("<pad>\t0\n<unk>\t0\n<bos>\t0\n<eos>\t0\nhi\t1\nhi\t2\n", ":6: symbol 'hi' appears twice"),
        ("<pad>\t0\n<unk>\t0\n<eos>\t0\n<bos>\t0\n", "must start with the special symbols"),
        ("just some words\n", "neither an nlm vocabulary"),
        ("", "is empty"),
    ],
)
def test_malformed_vocab_files_are_data_errors(tmp_path, content, message):
    (tmp_path / "v.txt").write_text(content)
    with pytest.raises(DataError, match=message):
        load_vocab(tmp_path / "v.txt")


def test_nonsense_vocab_settings_are_config_errors():
    for bad in (dict(size=0), dict(min_count=0), dict(level="bpe"), dict(level="bytes"), dict(sample_lines=-1)):
        with pytest.raises(ConfigError):
            VocabConfig(**bad)


def test_coverage_counts_tokens_without_eos_and_says_how_many_with():
    vocab, report = build()
    assert (report.training.tokens, report.training.lines, report.training.tokens_with_eos) == (12, 3, 15)
    coverage = measure_coverage(vocab, ["a b", "", "zebra"])
    assert (coverage.tokens, coverage.lines, coverage.tokens_with_eos) == (3, 3, 6)


@pytest.mark.parametrize("level", ["bpe", "unigram"])
def test_subword_pieces_used_never_exceed_the_pieces_kept(level):
    """Rare characters outside the alphabet become <unk>: each distinct one is one OOV type, not one per occurrence."""
    lines = [f"the river runs past market number {i} every morning" for i in range(300)] + ["ж ж ж", "ф ж"] * 2
    vocab, report = build_vocab(lines, config=VocabConfig(level=level, size=40, character_coverage=0.999))
    assert report.training.oov_tokens == 10
    assert report.training.oov_types == 2  # "ж" and "ф", however often they occur
    assert report.types_seen <= report.types_kept == 40


@pytest.mark.parametrize(
    "tokens, types, words",
    [(54625, 1, "54,625 tokens of 1 type"), (1, 1, "1 token of 1 type"), (0, 0, "0 tokens of 0 types")],
)
def test_oov_counts_are_said_in_english(tokens, types, words):
    assert Coverage(tokens=10**6, oov_tokens=tokens, types=9, oov_types=types).describe_oovs() == words

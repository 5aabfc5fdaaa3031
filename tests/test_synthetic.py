"""Tests for nlm.corpora.markov: the Markov source's exact entropy rate, scoring, sampling and corpus files."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from nlm.corpora.markov import MarkovSource
from nlm.errors import ConfigError, DataError, OutputExistsError


def uniform_source(num_words: int = 3) -> MarkovSource:
    """Every row uniform: start over V words, each word over V words + <eos>."""
    v = num_words
    return MarkovSource(
        words=tuple(f"w{'a' * (i + 1)}" for i in range(v)), start=(1 / v,) * v, trans=(((1 / (v + 1),) * (v + 1)),) * v
    )


def deterministic_source() -> MarkovSource:
    """One-hot rows: every sentence is `ab cd`, then `ef` is never used."""
    return MarkovSource(
        words=("ab", "cd", "ef"),
        start=(1.0, 0.0, 0.0),
        trans=((0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1.0)),
    )


@pytest.mark.parametrize("seed, concentration, mean_length", [(0, 0.3, 8.0), (1, 0.05, 3.0), (2, 5.0, 20.0)])
def test_random_rows_are_distributions_with_the_requested_mean_length(seed, concentration, mean_length):
    source = MarkovSource.random(num_words=12, concentration=concentration, mean_length=mean_length, seed=seed)
    assert source.trans_probs.shape == (12, 13)
    assert np.allclose(source.trans_probs.sum(axis=1), 1.0)
    assert np.isclose(source.start_probs.sum(), 1.0)
    assert (source.trans_probs >= 0).all() and (source.start_probs >= 0).all()
    assert source.mean_sentence_length() == pytest.approx(mean_length, rel=1e-9)
    assert all(w.isascii() and w.isalpha() and w.islower() for w in source.words)


def test_stationary_distribution_is_the_chain_eigenvector():
    source = MarkovSource.random(seed=3)
    chain, pi = source.chain_matrix(), source.stationary()
    assert np.allclose(chain.sum(axis=1), 1.0)
    assert np.allclose(pi @ chain, pi, atol=1e-14)
    # An independent method: the eigenvector of chain^T for eigenvalue 1.
    values, vectors = np.linalg.eig(chain.T)
    eigen = np.real(vectors[:, np.argmin(abs(values - 1))])
    assert np.allclose(pi, eigen / eigen.sum(), atol=1e-12)
    assert pi[-1] == pytest.approx(1 / (source.mean_sentence_length() + 1))


def test_entropy_rate_of_uniform_rows_follows_from_the_eos_share():
    source = uniform_source(3)  # mean length 4 words, so <eos> is 1 token in 5
    expected = (math.log(3) + 4 * math.log(4)) / 5
    assert source.entropy_rate() == pytest.approx(expected, rel=1e-12)
    assert source.entropy_rate_bits() == pytest.approx(expected / math.log(2), rel=1e-12)
    assert source.ideal_perplexity() == pytest.approx(math.exp(expected), rel=1e-12)


def test_entropy_rate_matches_the_mean_surprisal_of_200k_sampled_tokens():
    source = MarkovSource.random(seed=0)
    sentences = source.sample(22_500, seed=7)
    tokens = sum(len(s.split()) + 1 for s in sentences)
    assert tokens > 190_000
    surprisal = -math.fsum(source.sentence_logprob(s) for s in sentences) / tokens
    assert surprisal == pytest.approx(source.entropy_rate(), rel=0.01)
    eos_share = len(sentences) / tokens
    assert eos_share == pytest.approx(source.stationary()[-1], rel=0.02)


def test_deterministic_source_has_zero_entropy_and_one_sentence():
    source = deterministic_source()
    assert source.entropy_rate() == 0.0
    assert set(source.sample(20, seed=5)) == {"ab cd"}
    assert source.sentence_logprob("ab cd") == 0.0
    assert source.sentence_logprob("ab") == -math.inf


def test_token_logprobs_are_the_matrix_entries_and_sum_to_the_sentence():
    source = MarkovSource.random(num_words=6, seed=4)
    a, b, c = source.words[:3]
    terms = source.token_logprobs(f"{a} {b} {c}")
    expected = [source.start[0], source.trans[0][1], source.trans[1][2], source.trans[2][6]]
    assert terms == pytest.approx([math.log(p) for p in expected], rel=1e-12)
    assert source.sentence_logprob([a, b, c]) == pytest.approx(sum(terms), rel=1e-12)


def test_sentence_probabilities_sum_to_one_minus_the_longer_tail():
    source = MarkovSource.random(num_words=3, mean_length=2.0, seed=9)
    max_len = 6
    total = sum(
        math.exp(source.sentence_logprob(list(words)))
        for n in range(1, max_len + 1)
        for words in itertools.product(source.words, repeat=n)
    )
    # The end probability is 1/2 after every word, so P(length > 6) = (1/2)^6.
    assert total == pytest.approx(1 - 0.5**max_len, rel=1e-12)


def test_same_seed_same_sample_and_different_seed_different_sample():
    source = MarkovSource.random(seed=0)
    assert source.sample(50, seed=11) == source.sample(50, seed=11)
    assert source.sample(50, seed=11) != source.sample(50, seed=12)
    assert MarkovSource.random(seed=5) == MarkovSource.random(seed=5)
    assert MarkovSource.random(seed=5) != MarkovSource.random(seed=6)
    words = {w for s in source.sample(200, seed=1) for w in s.split()}
    assert words <= set(source.words)


def test_unknown_or_missing_words_are_data_errors():
    source = MarkovSource.random(seed=0)
    with pytest.raises(DataError, match="not in this Markov source"):
        source.sentence_logprob(f"{source.words[0]} zzzzzzzzzz")
    with pytest.raises(DataError, match="empty sentence"):
        source.token_logprobs("   ")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_words": 0},
        {"concentration": 0.0},
        {"concentration": math.nan},
        {"mean_length": 0.5},
        {"mean_length": math.inf},
    ],
)
def test_random_rejects_nonsense_parameters(kwargs):
    with pytest.raises(ConfigError):
        MarkovSource.random(**kwargs)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"words": ("ab", "<eos>")}, "lowercase"),
        ({"words": ("ab", "ab")}, "distinct"),
        ({"start": (0.5, 0.6)}, "sums to"),
        ({"trans": ((1.0, 0.0, 0.0), (0.5, 0.0, 0.5))}, "never reach <eos>"),  # ab loops forever
        ({"trans": ((0.0, 0.0, 1.0),)}, "rows of 3"),
    ],
)
def test_invalid_sources_are_config_errors(change, message):
    valid = {"words": ("ab", "cd"), "start": (0.5, 0.5), "trans": ((0.2, 0.3, 0.5), (0.1, 0.1, 0.8))}
    MarkovSource(**valid)
    with pytest.raises(ConfigError, match=message):
        MarkovSource(**{**valid, **change})


def test_write_corpus_round_trips_through_source_json(tmp_path):
    source = MarkovSource.random(num_words=8, seed=2)
    info = source.write_corpus(tmp_path, train_lines=40, valid_lines=10, seed=3)
    assert len((tmp_path / "train.txt").read_text(encoding="utf-8").splitlines()) == 40
    valid = (tmp_path / "valid.txt").read_text(encoding="utf-8").splitlines()
    assert len(valid) == 10 and all(line.strip() for line in valid)
    stored = json.loads((tmp_path / "source.json").read_text(encoding="utf-8"))
    assert stored["entropy_rate_nats"] == info["entropy_rate_nats"] == source.entropy_rate()
    assert MarkovSource.load(tmp_path / "source.json") == source
    with pytest.raises(OutputExistsError):
        source.write_corpus(tmp_path, train_lines=40, valid_lines=10)
    # valid.txt has its own seed stream, so more training lines leave it unchanged.
    source.write_corpus(tmp_path, train_lines=80, valid_lines=10, seed=3, overwrite=True)
    assert (tmp_path / "valid.txt").read_text(encoding="utf-8").splitlines() == valid

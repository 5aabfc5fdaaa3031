"""Beam search (nlm.lm.beam) and the log-prob every decoding method reports."""

from __future__ import annotations

import math

import pytest
import torch
from lm_helpers import HEADS, SOURCE, tiny_word_lm

from nlm.errors import ConfigError
from nlm.lm.beam import beam_search, normalised_score
from nlm.lm.decoding import Decoded
from nlm.lm.generation import SamplingConfig, generate
from nlm.lm.loading import load_language_model
from nlm.lm.scoring import score_ids
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.text.symbols import EOS

A, B, C, D = 4, 5, 6, 7  # the Markov chain's four words, after the four special symbols


def markov_lm(transitions: dict[int, dict[int, float]], vocab_size: int = 8) -> RNNLM:
    """An RNNLM that is exactly a first-order Markov chain: the state is the one-hot current token,
    and the output layer's column for token i holds log P(next | i).  Unlisted transitions get 1e-6."""
    model = RNNLM(
        RNNConfig(
            vocab_size=vocab_size, cell="rnn-relu", layers=1, emb=vocab_size, hidden=vocab_size, dropout=0.0, tie=False
        )
    )
    table = torch.full((vocab_size, vocab_size), 1e-6)
    for current, nexts in transitions.items():
        for symbol, p in nexts.items():
            table[current, symbol] = p
    table /= table.sum(1, keepdim=True)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embedding.weight.copy_(torch.eye(vocab_size))
        model.rnn.weight_ih_l0.copy_(torch.eye(vocab_size))
        model.decoder.weight.copy_(table.log().T)
    return model.eval()


# From the start (<eos>), A is the likelier first word, but everything after A is unlikely;
# B is less likely first, yet B -> C is near certain.  Greedy takes A; the best two-word path is B C.
TRAP = {EOS: {A: 0.6, B: 0.4}, A: {B: 0.34, C: 0.33, D: 0.33}, B: {C: 0.9, D: 0.1}, C: {D: 1.0}, D: {C: 1.0}}


def greedy(model: RNNLM, prefix: list[int], max_tokens: int) -> tuple[list[int], float]:
    """Greedy decoding written out step by step, from a fresh run of the whole sequence each time."""
    sequence, total = list(prefix), 0.0
    with torch.no_grad():
        for _ in range(max_tokens):
            features, _ = model(torch.tensor([sequence]))
            logprobs = model.log_probs(features[0, -1])
            logprobs[[0, 2]] = -math.inf  # <pad>, <bos>
            token = int(logprobs.argmax())
            total += float(logprobs[token])
            sequence.append(token)
    return sequence[len(prefix) :], total


def test_the_markov_model_is_the_chain_it_was_built_from():
    model = markov_lm(TRAP)
    (scores,) = score_ids(model, [[B, C]], start_id=EOS, bos_eos=False)
    assert scores[0] == pytest.approx(math.log(0.9), abs=1e-4)


def test_beam_finds_a_more_likely_sequence_than_greedy_where_greedy_is_trapped():
    model = markov_lm(TRAP)
    greedy_ids, greedy_logprob = greedy(model, [EOS], 2)
    assert greedy_ids == [A, B]  # the trap: 0.6 x 0.34 = 0.204
    (best, *_), *_ = beam_search(model, [[EOS]], beam=4, num=4, max_tokens=2)
    assert best.ids == [B, C] and not best.ended  # 0.4 x 0.9 = 0.36
    assert best.logprob == pytest.approx(math.log(0.4 * 0.9), abs=1e-4)
    assert best.logprob > greedy_logprob + 0.5


def test_beam_one_is_greedy_token_for_token_and_beam_is_deterministic():
    model = markov_lm(TRAP)
    ((one,),) = beam_search(model, [[EOS]], beam=1, num=1, max_tokens=5)
    ids, logprob = greedy(model, [EOS], 5)
    assert one.ids == ids and one.logprob == pytest.approx(logprob, abs=1e-9)
    again = beam_search(model, [[EOS], [EOS, B]], beam=3, num=3, max_tokens=6)
    assert again == beam_search(model, [[EOS], [EOS, B]], beam=3, num=3, max_tokens=6)


def test_hypotheses_end_at_eos_and_are_ranked_by_the_normalised_score():
    # From the start: <eos> at once (0.5), or A then <eos> (0.5 x 0.9 = 0.45).
    model = markov_lm({EOS: {EOS: 0.5, A: 0.5}, A: {EOS: 0.9, B: 0.1}, B: {EOS: 1.0}})
    ((short, long, *_),) = beam_search(model, [[EOS]], beam=3, num=3, max_tokens=5, length_penalty=0.0)
    assert (short.ids, short.ended, long.ids, long.ended) == ([], True, [A], True)
    assert short.logprob == pytest.approx(math.log(0.5), abs=1e-4)
    ((first, second, *_),) = beam_search(model, [[EOS]], beam=3, num=3, max_tokens=5, length_penalty=2.0)
    assert (first.ids, second.ids) == ([A], [])  # a length penalty favours the longer one
    assert normalised_score(Decoded([A], True, -1.0), 0.0) == -1.0
    assert normalised_score(Decoded([A], True, -1.0), 1.0) == pytest.approx(-1.0 / (7 / 6))


@pytest.fixture(scope="module", params=sorted(HEADS))
def word_lm(request, tmp_path_factory):
    return load_language_model(tiny_word_lm(tmp_path_factory, request.param))


def test_beam_one_equals_greedy_on_a_trained_model_for_each_prompt(word_lm):
    prompts = ["", SOURCE.words[0], " ".join(SOURCE.words[2:5]), SOURCE.words[7]]
    greedy_out = list(generate(word_lm, prompts, config=SamplingConfig(greedy=True, max_tokens=12)))
    beam_out = list(generate(word_lm, prompts, config=SamplingConfig(beam=1, max_tokens=12)))
    assert [(g.ids, g.ended) for g in greedy_out] == [(b.ids, b.ended) for b in beam_out]
    for g, b in zip(greedy_out, beam_out):
        assert g.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_every_decoding_reports_the_log_prob_the_scorer_gives(word_lm):
    prompts = [SOURCE.words[1], ""]
    for config in (
        SamplingConfig(greedy=True, max_tokens=10),
        SamplingConfig(seed=4, num=2, max_tokens=10),
        SamplingConfig(beam=3, num=2, max_tokens=10),
    ):
        for g in generate(word_lm, prompts, config=config):
            generated = [*g.ids, *([EOS] if g.ended else [])]
            sequence = [word_lm.start_id, *word_lm.vocab.encode(g.prompt), *generated]
            (scored,) = score_ids(word_lm.model, [sequence], start_id=word_lm.start_id, bos_eos=False)
            assert g.logprob == pytest.approx(float(scored[-len(generated) :].sum()), abs=1e-3), config


def test_beam_returns_num_best_per_prompt_in_prompt_order(word_lm):
    prompts = [SOURCE.words[0], SOURCE.words[3], ""]
    out = list(generate(word_lm, prompts, config=SamplingConfig(beam=4, num=2, max_tokens=8)))
    assert [(g.prompt_index, g.sample_index) for g in out] == [(p, k) for p in range(3) for k in range(2)]
    for first, second in zip(out[::2], out[1::2]):
        assert normalised_score(Decoded(list(first.ids), first.ended, first.logprob), 0.6) >= normalised_score(
            Decoded(list(second.ids), second.ended, second.logprob), 0.6
        )


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(beam=2, num=3), "--num 3"),
        (dict(beam=2, greedy=False), "--sample and --beam"),
        (dict(beam=2, top_k=5), "beam search (--beam) does not sample"),
        (dict(beam=-1), "--beam"),
        (dict(beam=2, length_penalty=-1.0), "--length-penalty"),
    ],
)
def test_contradictory_beam_settings_are_config_errors(options, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SamplingConfig(**options)

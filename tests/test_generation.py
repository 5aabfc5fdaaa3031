"""Tests for nlm.lm.generation: greedy and sampled decoding, the carried state, detokenizing, evaluation."""

from __future__ import annotations

import math

import pytest
import sacrebleu
import torch
from lm_helpers import HEADS, SOURCE, session_root, tiny_word_lm, train_tiny_lm

from nlm.errors import ConfigError, DataError
from nlm.lm.generation import (
    SamplingConfig,
    continuation_text,
    evaluate_generation,
    filter_logits,
    generate,
    generate_ids,
    pick_next,
    reference_continuation,
)
from nlm.lm.loading import load_language_model
from nlm.lm.scoring import CorpusSummary, score_sentences
from nlm.text.symbols import BOS, EOS, PAD


@pytest.fixture(scope="session", params=sorted(HEADS))
def word_lm(request, tmp_path_factory):
    """The tiny word model, once with a full softmax and once with an adaptive one."""
    return load_language_model(tiny_word_lm(tmp_path_factory, request.param))


def prompt_ids(lm, text: str) -> list[int]:
    return [lm.start_id, *lm.vocab.encode(text)]


def test_greedy_is_deterministic_and_equals_rerunning_the_whole_prefix(word_lm):
    prefix = prompt_ids(word_lm, " ".join(SOURCE.words[:2]))
    config = SamplingConfig(greedy=True, max_tokens=15, stop_at_eos=False)
    first = generate_ids(word_lm.model, prefix, config=config, generator=torch.Generator())
    again = generate_ids(word_lm.model, prefix, config=config, generator=torch.Generator().manual_seed(99))
    assert first == again
    # Reference without a carried state: re-run the whole sequence for every new token.
    sequence = list(prefix)
    with torch.no_grad():
        for _ in range(15):
            features, _ = word_lm.model(torch.tensor([sequence]))
            last = word_lm.model.log_probs(features[0, -1])
            last[[PAD, BOS]] = -math.inf
            sequence.append(int(last.argmax()))
    assert first[0][0] == sequence[len(prefix) :]


def test_each_step_feeds_one_token_with_the_carried_state(word_lm):
    widths = []
    hook = word_lm.model.register_forward_pre_hook(lambda module, args: widths.append(args[0].shape))
    try:
        config = SamplingConfig(greedy=False, max_tokens=30, num=3, seed=1, stop_at_eos=False)
        generate_ids(
            word_lm.model,
            prompt_ids(word_lm, SOURCE.words[0]),
            config=config,
            generator=torch.Generator().manual_seed(1),
        )
    finally:
        hook.remove()
    assert widths[0] == (1, 2)  # the prefix once, in one row
    assert widths[1:] == [(3, 1)] * 29  # then one token per sample per step


def test_sampling_with_a_seed_reproduces_and_another_seed_differs(word_lm):
    prompts = [SOURCE.words[0], "", SOURCE.words[3]]

    def run(seed: int) -> list[str]:
        config = SamplingConfig(greedy=False, num=4, seed=seed, max_tokens=20)
        return [s.text for s in generate(word_lm, prompts, config=config)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_top_k_one_and_temperature_zero_equal_greedy(word_lm):
    prompts = [SOURCE.words[1], SOURCE.words[2] + " " + SOURCE.words[4]]
    greedy = [s.text for s in generate(word_lm, prompts, config=SamplingConfig(greedy=True, max_tokens=20))]
    top1 = [
        s.text
        for s in generate(
            word_lm, prompts, config=SamplingConfig(greedy=False, top_k=1, temperature=2.0, seed=3, max_tokens=20)
        )
    ]
    cold = [s.text for s in generate(word_lm, prompts, config=SamplingConfig(temperature=0.0, max_tokens=20))]
    assert greedy == top1 == cold


def test_top_k_and_top_p_keep_exactly_the_tokens_they_should():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))

    def kept(**filters) -> list[bool]:
        return torch.isfinite(filter_logits(logits, **filters))[0].tolist()

    assert kept(top_k=2) == [True, True, False, False]
    assert kept(top_p=0.5) == [True, False, False, False]  # the first token already holds 0.5
    assert kept(top_p=0.8) == [True, True, False, False]
    assert kept(top_p=0.81) == [True, True, True, False]
    assert kept(top_k=3, top_p=0.99) == [True, True, True, False]


def test_samples_follow_the_model_distribution():
    probs = torch.tensor([0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4])  # pad, unk, bos, eos, 3 words
    probs[1] = 0.0
    logits = torch.log(probs.clamp_min(1e-30)).repeat(20_000, 1)
    drawn = pick_next(logits, SamplingConfig(greedy=False), torch.Generator().manual_seed(0))
    frequencies = torch.bincount(drawn, minlength=7).double() / len(drawn)
    assert torch.allclose(frequencies, probs.double(), atol=0.012)  # ~3.5 standard errors of 20k draws
    assert not ((drawn == PAD) | (drawn == BOS)).any()


def test_samples_stop_at_eos_and_respect_max_tokens_and_order(word_lm):
    prompts = [SOURCE.words[0], SOURCE.words[5], ""]
    samples = list(generate(word_lm, prompts, config=SamplingConfig(greedy=False, num=3, seed=2, max_tokens=8)))
    assert [(s.prompt_index, s.sample_index) for s in samples] == [(p, k) for p in range(3) for k in range(3)]
    for s in samples:
        assert EOS not in s.ids and len(s.ids) <= 8
        assert s.ended or len(s.ids) == 8
        assert s.text.startswith(prompts[s.prompt_index])
    assert any(s.ended for s in samples)  # sentences of ~6 words mostly end within 8 tokens


def test_unknown_prompt_symbols_become_unk_and_are_counted(word_lm):
    (sample,) = generate(word_lm, [f"{SOURCE.words[0]} blorp zint"], config=SamplingConfig(greedy=True, max_tokens=3))
    assert sample.prompt_oovs == 2
    assert sample.text.startswith(f"{SOURCE.words[0]} blorp zint")


def test_char_and_subword_continuations_are_detokenized(tmp_path_factory):
    root = session_root(tmp_path_factory)
    words = SOURCE.words
    char = load_language_model(train_tiny_lm(root, "char", level="char"))
    head = char.vocab.encode(f"{words[0]} {words[1][:2]}")
    assert (
        continuation_text(char.vocab, head, char.vocab.encode(f"{words[1][2:]} {words[2]}"))
        == f"{words[1][2:]} {words[2]}"
    )
    bpe = load_language_model(train_tiny_lm(root, "bpe", level="bpe", size=30))
    full = bpe.vocab.encode(f"{words[0]} {words[1]} {words[2]}")
    for cut in range(1, len(full)):
        text = f"{words[0]} {words[1]} {words[2]}"
        assert bpe.vocab.decode(full[:cut]) + continuation_text(bpe.vocab, full[:cut], full[cut:]) == text
    (sample,) = generate(bpe, [words[0]], config=SamplingConfig(greedy=False, seed=1, max_tokens=10))
    assert sample.text == bpe.vocab.decode(bpe.vocab.encode(words[0]) + list(sample.ids))


def test_bad_sampling_settings_are_config_errors():
    for bad in [
        dict(max_tokens=0),
        dict(temperature=-1),
        dict(top_k=-1),
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(num=0),
    ]:
        with pytest.raises(ConfigError):
            SamplingConfig(**bad)


def test_reference_continuation_drops_the_prompt_only_when_the_reference_starts_with_it():
    assert reference_continuation("The river", "The river was high.") == "was high."
    assert reference_continuation("The river", "was high.") == "was high."
    assert reference_continuation("", "was high.") == "was high."


def test_evaluation_reports_sacrebleu_numbers_and_the_references_perplexity(word_lm):
    prompts = [" ".join(s.split()[:2]) for s in SOURCE.sample(8, seed=21)]
    references = SOURCE.sample(8, seed=21)
    config = SamplingConfig(greedy=True, max_tokens=10)
    result = evaluate_generation(word_lm, prompts, references, config=config, metrics=["bleu", "chrf"])
    hyps = [s.continuation.strip() for s in generate(word_lm, prompts, config=config)]
    targets = [reference_continuation(p, r) for p, r in zip(prompts, references)]
    assert [m.score for m in result.metrics] == [
        sacrebleu.corpus_bleu(hyps, [targets]).score,
        sacrebleu.corpus_chrf(hyps, [targets]).score,
    ]
    summary = CorpusSummary()
    for s in score_sentences(word_lm, references):
        summary.add(s)
    assert result.references.ppl == pytest.approx(summary.ppl)
    with pytest.raises(DataError, match="has 7 lines"):
        evaluate_generation(word_lm, prompts, references[:7], config=config)

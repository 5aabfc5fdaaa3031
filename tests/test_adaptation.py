"""The cache pointer and dynamic evaluation: normalised, never looking ahead, equal to plain scoring when they
change nothing, a clear gain where they should help, none where they should not, and nothing written.

Three tiny models, trained once per session on synthetic text:
  names     "the NAME met the NAME ." with 60 names; its test documents each use 3 of them, over and over
            (rare words that a document repeats: what the cache is for)
  uniform   words drawn independently and uniformly, lines of geometric length (nothing to repeat: a cache
            can only help if it peeks at the word it predicts)
  grammar   the conftest grammar; its test text is shifted to one sentence most of the time (a new domain:
            what dynamic evaluation is for)
"""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from cli_helpers import nlm, one_line_error, snapshot
from conftest import tiny_text
from lm_helpers import HEADS, session_root, tiny_word_lm, train_tiny_lm

import nlm as nlm_api
from nlm.lm.adapt import adapted
from nlm.lm.adapt_config import Adaptation
from nlm.lm.cache import PointerCache
from nlm.lm.scoring import score_ids
from nlm.text.symbols import EOS

NAMES = [f"n{i}" for i in range(60)]
WORDS = [f"w{i}" for i in range(30)]


def names_text(rng: random.Random, lines: int, pool: list[str]) -> str:
    return "".join(f"the {rng.choice(pool)} met the {rng.choice(pool)} .\n" for _ in range(lines))


def uniform_text(rng: random.Random, lines: int) -> str:
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS)]
        while rng.random() < 0.9:
            words.append(rng.choice(WORDS))
        out.append(" ".join(words) + "\n")
    return "".join(out)


@pytest.fixture(scope="session")
def corpora(tmp_path_factory):
    root = session_root(tmp_path_factory) / "adaptation"
    root.mkdir(exist_ok=True)
    rng = random.Random(0)
    texts = {
        "names_train": names_text(rng, 800, NAMES),
        "names_tune": names_text(rng, 60, rng.sample(NAMES, 3)),
        "names_test": names_text(rng, 60, rng.sample(NAMES, 3)),
        "uniform_train": uniform_text(rng, 600),
        "uniform_tune": uniform_text(rng, 60),
        "uniform_test": uniform_text(rng, 60),
        "grammar_train": tiny_text(400, seed=1),
        "grammar_shifted": "".join(
            "the cat paints the river .\n" if rng.random() < 0.8 else tiny_text(1, seed=rng.randrange(10**6))
            for _ in range(80)
        ),
    }
    for name, text in texts.items():
        (root / f"{name}.txt").write_text(text)
    return root


def trained(corpora, name: str):
    return train_tiny_lm(corpora, name, train_file=corpora / f"{name}_train.txt", valid_file=None, steps=150)


@pytest.fixture(scope="session")
def names_run(corpora):
    return trained(corpora, "names")


@pytest.fixture(scope="session")
def grammar_run(corpora):
    return trained(corpora, "grammar")


# -- the cache ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_the_cache_mixture_is_a_distribution_and_what_scoring_counts(tmp_path_factory, head):
    lm = nlm_api.load(tiny_word_lm(tmp_path_factory, head)).loaded
    ids = torch.tensor([[EOS, *lm.vocab.encode("a b c a b d a c b a")]])  # the tiny vocabulary's words
    inputs, targets = ids[:, :-1], ids[:, 1:]
    with torch.inference_mode():
        features, _ = lm.model(inputs)
        log_probs, nll = lm.model.log_probs(features), lm.model.nll(features, targets)
    probs = PointerCache(6, theta=0.5, lam=0.3).distribution(features, targets, log_probs)
    assert torch.allclose(probs.sum(-1), torch.ones(1, targets.size(1), dtype=torch.float64), atol=1e-6)
    scored = PointerCache(6, theta=0.5, lam=0.3).mix(features, targets, nll)
    at_targets = probs.gather(2, targets[..., None])[..., 0]
    assert torch.allclose(-at_targets.log(), scored.double(), atol=1e-5)
    assert torch.equal(scored[:, 0], nll[:, 0])  # an empty cache: the model alone
    assert not torch.allclose(scored, nll)  # and a real mixture after it


def test_the_word_being_predicted_is_never_in_the_cache(tmp_path_factory):
    """Every target new: the cache has nothing on it, so the mixture leaves (1 - lambda) p_model."""
    lm = nlm_api.load(tiny_word_lm(tmp_path_factory, "full")).loaded
    vocab = len(lm.vocab)
    inputs = torch.arange(vocab).roll(1)[None]
    targets = torch.arange(vocab)[None]  # each id once, each the word that followed the one before it
    with torch.inference_mode():
        features, _ = lm.model(inputs)
        nll = lm.model.nll(features, targets)
    scored = PointerCache(100, theta=1.0, lam=0.25).mix(features, targets, nll)
    assert torch.allclose(scored[:, 1:] - nll[:, 1:], torch.full_like(nll[:, 1:], -math.log(0.75)), atol=1e-6)


def test_the_cache_lowers_the_perplexity_of_a_text_that_repeats_its_rare_words(corpora, names_run):
    lm = nlm_api.load(names_run)
    tuning = lm.tune_cache(corpora / "names_tune.txt", cache=100)
    plain = lm.perplexity(corpora / "names_test.txt")
    cached = lm.perplexity(corpora / "names_test.txt", cache=100, cache_theta=tuning.theta, cache_lambda=tuning.lam)
    assert cached.tokens == plain.tokens
    assert cached.ppl < 0.85 * plain.ppl, (cached.ppl, plain.ppl)  # measured: 2.33 against 3.18


def test_the_cache_does_not_help_independent_words(corpora):
    """Words drawn independently: a cache that never sees the word it predicts cannot beat the model (a peek at
    it, the cache's band including the current position, gave 24.1 against 30.7 here)."""
    lm = nlm_api.load(trained(corpora, "uniform"))
    tuning = lm.tune_cache(corpora / "uniform_tune.txt", cache=100)
    plain = lm.perplexity(corpora / "uniform_test.txt").ppl
    cached = lm.perplexity(corpora / "uniform_test.txt", cache=100, cache_theta=tuning.theta, cache_lambda=tuning.lam)
    assert cached.ppl > 0.99 * plain, (cached.ppl, plain)


# -- dynamic evaluation ------------------------------------------------------------------------------


@pytest.mark.parametrize("rule, lr", [("sgd", 1.0), ("rms", 3e-3)])
def test_dynamic_evaluation_lowers_the_perplexity_of_a_shifted_domain(corpora, grammar_run, rule, lr):
    lm = nlm_api.load(grammar_run)
    shifted = corpora / "grammar_shifted.txt"
    plain = lm.perplexity(shifted, rows=1)
    stats = str(corpora / "grammar_train.txt") if rule == "rms" else None
    adapted_ppl = lm.perplexity(shifted, dynamic_eval=True, dyn_rule=rule, dyn_lr=lr, dyn_stats=stats)
    assert adapted_ppl.tokens == plain.tokens
    assert adapted_ppl.ppl < 0.8 * plain.ppl, (adapted_ppl.ppl, plain.ppl)  # measured: 1.44 and 1.48 against 2.22
    assert lm.perplexity(shifted, rows=1).nats == plain.nats  # and the model is the trained one again


def test_the_first_segment_is_scored_by_the_trained_model_and_later_ones_after_learning(grammar_run):
    lm = nlm_api.load(grammar_run).loaded
    ids = lm.vocab.encode(tiny_text(6, seed=5).replace("\n", " "))
    plain = score_ids(lm.model, [ids], start_id=lm.start_id, steps=5)[0]
    settings = Adaptation(dynamic_eval=True, dyn_rule="sgd", dyn_lr=2.0, dyn_segment=5)
    with adapted(lm, settings) as adapter:
        learning = score_ids(lm.model, [ids], start_id=lm.start_id, adapter=adapter, steps=5)[0]
    assert (learning[:5] == plain[:5]).all()
    assert not (learning[5:] == plain[5:]).all()
    assert (score_ids(lm.model, [ids], start_id=lm.start_id, steps=5)[0] == plain).all()  # restored


@pytest.mark.parametrize(
    "options", [{"dynamic_eval": True, "dyn_rule": "sgd", "dyn_lr": 3.0, "dyn_segment": 4}, {"cache": 50}]
)
def test_no_token_is_scored_with_anything_learnt_from_itself_or_what_follows(grammar_run, options):
    """Two texts with the same first 19 words (not a segment boundary) and different ends: those 19 scores
    are the same, bit for bit, under dynamic evaluation and the cache alike."""
    lm = nlm_api.load(grammar_run)
    prefix = "the cat sees the river . a dog likes the hills . my friend finds a red house ."
    first = lm.token_scores(prefix + " our teacher paints the market .", **options)
    second = lm.token_scores(prefix + " a dog walks to a small boat .", **options)
    assert len(prefix.split()) == 19  # segments of 4 tokens: the 20th token is inside the 5th
    assert [row.logprob for row in first[:19]] == [row.logprob for row in second[:19]]
    assert first[19].logprob != second[19].logprob


def test_dynamic_evaluation_is_deterministic_and_each_line_its_own_document(corpora, grammar_run):
    lm = nlm_api.load(grammar_run)
    lines = ["the cat paints the river . the cat paints the river . the cat paints the river ."] * 3
    options = dict(dynamic_eval=True, dyn_rule="sgd", dyn_lr=1.0, dyn_segment=4)
    alone = [s.logprob for s in lm.score(lines, **options)]
    assert alone == [s.logprob for s in lm.score(lines, **options)]
    assert alone[0] == alone[1] == alone[2]  # the weights start trained again for every line
    carried = [s.logprob for s in lm.score(lines, dyn_carry=True, **options)]
    assert carried[0] == alone[0] and carried[2] > carried[1] > carried[0]  # one document: it keeps learning


# -- equal to plain scoring when nothing is adapted -------------------------------------------------


def test_cache_lambda_0_and_dyn_lr_0_give_plain_scoring_exactly(corpora, grammar_run):
    text = corpora / "grammar_shifted.txt"
    plain_score = nlm("score", "-m", grammar_run, text, "-q", "--batch-size", "1", "--per-token")
    cache_zero = nlm(
        "score",
        "-m",
        grammar_run,
        text,
        "-q",
        "--batch-size",
        "1",
        "--per-token",
        "--cache",
        "50",
        "--cache-lambda",
        "0",
    )
    dyn_zero = nlm(
        "score", "-m", grammar_run, text, "-q", "--per-token", "--dynamic-eval", "--dyn-rule", "sgd", "--dyn-lr", "0"
    )  # every line shorter than a segment of 20
    assert plain_score.exit_code == cache_zero.exit_code == dyn_zero.exit_code == 0, dyn_zero.stderr
    assert cache_zero.stdout == plain_score.stdout == dyn_zero.stdout
    plain = nlm("perplexity", "-m", grammar_run, text, "--rows", "1", "--format", "json")
    cache0 = nlm(
        "perplexity", "-m", grammar_run, text, "--rows", "1", "--format", "json", "--cache", "50", "--cache-lambda", "0"
    )
    dyn0 = nlm(
        "perplexity",
        "-m",
        grammar_run,
        text,
        "--format",
        "json",
        "--dynamic-eval",
        "--dyn-rule",
        "sgd",
        "--dyn-lr",
        "0",
        "--dyn-segment",
        "12",
    )  # the model's bptt: the windows of plain scoring
    loss = [json.loads(r.stdout)["loss"] for r in (plain, cache0, dyn0)]
    assert loss[0] == loss[1] == loss[2], loss


# -- nothing written, the checkpoint unchanged -------------------------------------------------------


def test_neither_writes_into_the_run_folder_nor_changes_the_checkpoint(corpora, grammar_run, tmp_path):
    before = snapshot(grammar_run)
    cache_dir = tmp_path / "cache"
    env = {"NLM_CACHE_DIR": str(cache_dir)}
    text, train = corpora / "grammar_shifted.txt", corpora / "grammar_train.txt"
    both = ["--cache", "50", "--dynamic-eval", "--dyn-stats", train, "--tune-cache", text]
    for command in (["perplexity", text], ["score", text, "-q"]):
        result = nlm(*command, "-m", grammar_run, *both, env=env)
        assert result.exit_code == 0, result.stderr
        assert "cache tuned on" in result.stderr
    assert snapshot(grammar_run) == before
    assert len(list((cache_dir / "dyn-stats").glob("*.pt"))) == 1  # computed once, kept in the cache folder


# -- what cannot be asked ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, words",
    [
        (["--dyn-lr", "0.1"], "--dyn-lr applies with --dynamic-eval only"),
        (["--dynamic-eval"], "--dyn-rule rms needs --dyn-stats TRAIN_FILE"),
        (["--cache", "10", "--cache-lambda", "1"], "--cache-lambda must be in [0, 1)"),
        (["--cache-theta", "0.5"], "--cache-theta applies with --cache W only"),
        (["--protocol", "sentence", "--rows", "2"], "--rows applies to --protocol stream"),
    ],
)
def test_nonsense_adaptation_options_are_one_line_and_exit_2(grammar_run, corpora, options, words):
    one_line_error(nlm("perplexity", "-m", grammar_run, corpora / "grammar_shifted.txt", *options), 2, words)


def test_the_api_names_an_unknown_adaptation_option(grammar_run):
    with pytest.raises(nlm_api.NlmError, match="no adaptation option 'cach'") as error:
        nlm_api.load(grammar_run).score("the cat", cach=5)
    assert error.value.exit_code == 2


def test_a_step_size_that_blows_up_is_one_line_and_exit_70(grammar_run, corpora):
    result = nlm(
        "perplexity",
        "-m",
        grammar_run,
        corpora / "grammar_shifted.txt",
        "--dynamic-eval",
        "--dyn-rule",
        "sgd",
        "--dyn-lr",
        "1e9",
    )
    one_line_error(result, 70, "dynamic evaluation diverged")
    assert "lower --dyn-lr" in result.stderr

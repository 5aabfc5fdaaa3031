"""Tests for nlm.models.heads: the full and adaptive output heads under RNNLM's nll / log_probs contract."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from lm_helpers import HEADS, session_root, train_tiny_lm, write_corpus

from nlm.errors import ConfigError
from nlm.lm.loading import load_language_model
from nlm.lm.task import evaluate_corpus
from nlm.models.heads import build_head, parse_cutoffs
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.text.corpus import encode_corpus
from nlm.text.symbols import PAD

VOCAB = 60
KINDS = {"full": {}, "adaptive": {"softmax": "adaptive", "cutoffs": (10, 25)}}


def tiny_model(kind: str, *, tie: bool, seed: int = 0) -> RNNLM:
    torch.manual_seed(seed)
    config = RNNConfig(vocab_size=VOCAB, emb=16, hidden=16, layers=1, dropout=0.0, tie=tie, **KINDS[kind])
    return RNNLM(config).eval()


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_log_probs_are_normalised_and_nll_reads_the_same_distribution(kind, tie):
    model = tiny_model(kind, tie=tie)
    inputs = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(1))
    targets = inputs.roll(-1, dims=1)
    targets[0, -3:] = PAD  # padding is a target like any other; callers mask it
    with torch.no_grad():
        features, _ = model(inputs)
        log_probs = model.log_probs(features)
        nll = model.nll(features, targets)
    assert log_probs.shape == (3, 9, VOCAB) and log_probs.dtype == nll.dtype == torch.float32
    assert nll.shape == targets.shape
    torch.testing.assert_close(
        log_probs.double().exp().sum(-1), torch.ones(3, 9, dtype=torch.float64), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(nll, -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1), rtol=0, atol=1e-5)
    one = model.log_probs(features[1, 4])  # a single position [H] gives [V]
    torch.testing.assert_close(one, log_probs[1, 4])


def test_adaptive_probabilities_are_the_head_times_the_cluster_probabilities():
    """An independent reference from the weights: p(w) = p(cluster of w | head) * p(w | cluster)."""
    model = tiny_model("adaptive", tie=True)
    features = torch.randn(5, 16, generator=torch.Generator().manual_seed(2))
    emb, head = model.embedding.weight, model.decoder.head
    head_weight = torch.cat([emb[:10], head.clusters])  # tied: the shortlist rows are the embedding's
    head_lp = torch.log_softmax(features @ head_weight.T + head.bias, -1)
    pieces = [head_lp[:, :10]]
    for k, tail in enumerate(model.decoder.tail):
        down, up = tail[0].weight, tail[1].weight
        pieces.append(head_lp[:, 10 + k, None] + torch.log_softmax(features @ down.T @ up.T, -1))
    with torch.no_grad():
        torch.testing.assert_close(model.log_probs(features), torch.cat(pieces, -1), rtol=0, atol=1e-5)


def test_tying_shares_the_embedding_with_the_whole_full_layer_and_the_adaptive_shortlist():
    full, adaptive = tiny_model("full", tie=True), tiny_model("adaptive", tie=True)
    assert full.decoder.weight is full.embedding.weight
    assert adaptive.decoder.head.shared is adaptive.embedding.weight
    untied = tiny_model("adaptive", tie=False)

    def count(model) -> int:
        return sum(p.numel() for p in model.parameters())

    assert count(untied) - count(adaptive) == 10 * 16  # the shortlist's 10 rows of 16 are shared
    # a gradient through the head reaches the shortlist rows of the embedding (and only through it here)
    features = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    adaptive.nll(features, torch.tensor([5, 12, 30, 59])).sum().backward()
    grad = adaptive.embedding.weight.grad
    assert grad[:10].abs().sum() > 0 and grad[10:].abs().sum() == 0


def test_the_full_head_keeps_its_parameter_names_so_old_checkpoints_load():
    model = tiny_model("full", tie=False)
    assert [n for n in model.state_dict() if n.startswith("decoder.")] == ["decoder.weight", "decoder.bias"]
    assert (
        RNNConfig.from_dict({k: v for k, v in model.config.to_dict().items() if k not in ("softmax", "cutoffs")})
        == model.config
    )
    adaptive = tiny_model("adaptive", tie=False)
    again = RNNLM(RNNConfig.from_dict(adaptive.config.to_dict()))  # cutoffs come back from JSON as a list
    again.load_state_dict(adaptive.state_dict())
    assert again.config.cutoffs == (10, 25)


@pytest.mark.parametrize("vocab", [60, 64])  # 60: logits padded to 64 columns (PaddedLogits); 64: already aligned
def test_full_nll_and_its_gradients_equal_a_plain_linear_and_cross_entropy(vocab):
    """The aligned training path is the same function as F.linear + F.cross_entropy, gradients included."""
    torch.manual_seed(3)
    head = build_head("full", hidden=16, vocab_size=vocab, cutoffs=())
    features = torch.randn(4, 7, 16, requires_grad=True)
    targets = torch.randint(0, vocab, (4, 7))
    weights = torch.rand(4, 7)  # a weighted sum, as a masked or averaged loss back-propagates
    plain = F.cross_entropy(
        F.linear(features, head.weight, head.bias).reshape(-1, vocab), targets.reshape(-1), reduction="none"
    )
    nll = head.nll(features, targets)
    expected = torch.autograd.grad((plain.view(4, 7) * weights).sum(), (features, head.weight, head.bias))
    got = torch.autograd.grad((nll * weights).sum(), (features, head.weight, head.bias))
    torch.testing.assert_close(nll, plain.view(4, 7), rtol=0, atol=1e-6)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


def test_the_full_heads_reused_logits_buffer_never_mixes_two_graphs():
    """Two losses alive at once, one dropped unused, one after inference: each gradient is its own."""
    torch.manual_seed(4)
    head = build_head("full", hidden=8, vocab_size=30, cutoffs=())
    inputs = [torch.randn(5, 8, requires_grad=True) for _ in range(3)]
    targets = [torch.randint(0, 30, (5,)) for _ in range(3)]

    def plain(i):
        return F.cross_entropy(F.linear(inputs[i], head.weight, head.bias), targets[i], reduction="none")

    expected = torch.autograd.grad((plain(0).sum() + 2 * plain(1).sum()), (inputs[0], inputs[1], head.weight))
    with torch.inference_mode():
        head.nll(inputs[2], targets[2])  # an inference tensor must not become the training buffer
    head.nll(inputs[2], targets[2])  # a graph never back-propagated, dropped at once
    first, second = head.nll(inputs[0], targets[0]), head.nll(inputs[1], targets[1])  # both alive before backward
    got = torch.autograd.grad((first.sum() + 2 * second.sum()), (inputs[0], inputs[1], head.weight))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


def test_adaptive_nll_is_float32_under_bf16_autocast():
    model = tiny_model("adaptive", tie=True)
    inputs = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(4))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features, _ = model(inputs)
        nll, log_probs = model.nll(features, inputs), model.log_probs(features)
    assert nll.dtype == log_probs.dtype == torch.float32
    torch.testing.assert_close(
        log_probs.double().exp().sum(-1), torch.ones(2, 5, dtype=torch.float64), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(softmax="adaptive"), "needs --cutoffs"),
        (dict(softmax="adaptive", cutoffs=(25, 10)), "must increase"),
        (dict(softmax="adaptive", cutoffs=(10, 10)), "must increase"),
        (dict(softmax="adaptive", cutoffs=(0, 10)), "positive"),
        (dict(softmax="adaptive", cutoffs=(10, 60)), "below the vocabulary size"),
        (dict(softmax="adaptive", cutoffs=(5, 10, 20)), "too small for 3 tail clusters"),
        (dict(cutoffs=(10,)), "applies to --softmax adaptive only"),
        (dict(softmax="hierarchical"), "--softmax must be one of full, adaptive"),
    ],
)
def test_bad_heads_are_one_sentence_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        RNNConfig(vocab_size=VOCAB, emb=8, hidden=8, **settings)


def test_cutoffs_are_read_from_the_command_line_form():
    assert parse_cutoffs("2000,10000") == (2000, 10000) and parse_cutoffs(None) == parse_cutoffs("") == ()
    for bad in ("2000;10000", "2k", "2000,"):
        with pytest.raises(ConfigError, match="comma-separated whole numbers"):
            parse_cutoffs(bad)


def test_cutoffs_wait_for_the_vocabulary_size():
    config = RNNConfig(softmax="adaptive", cutoffs=(2000, 10000))  # vocab_size 0: not known yet
    with pytest.raises(ConfigError, match=r"below the vocabulary size \(5000 symbols\)"):
        config.replace(vocab_size=5000)


def test_training_lowers_the_loss_of_both_heads_below_a_unigram_model(tmp_path_factory):
    """300 steps on the Markov corpus: each head learns context, and the adaptive one about as well as the full one."""
    root = session_root(tmp_path_factory)
    train, valid = write_corpus(root / "corpus")
    counts = Counter(w for line in train.read_text().splitlines() for w in [*line.split(), "<eos>"])
    words = [w for line in valid.read_text().splitlines() for w in [*line.split(), "<eos>"]]
    unigram = -sum(math.log(counts[w] / sum(counts.values())) for w in words) / len(words)  # 2.55 nats
    losses = {}
    for head, settings in HEADS.items():
        lm = load_language_model(train_tiny_lm(root, f"learn-{head}", steps=300, **settings))
        corpus = encode_corpus(valid, lm.vocab, cache_dir=root / "cache")
        torch.manual_seed(3)
        untrained = RNNLM(lm.model_config).eval()
        with torch.inference_mode():
            before = evaluate_corpus(untrained, corpus, lm.data_config, lm.device)
            after = evaluate_corpus(lm.model, corpus, lm.data_config, lm.device)
        losses[head] = after[0] / after[1]
        assert losses[head] < before[0] / before[1] - 0.5
        assert losses[head] < unigram - 0.3
    assert abs(losses["adaptive"] - losses["full"]) < 0.1

"""The continuous cache pointer (Grave, Joulin & Usunier 2017, arXiv:1612.04426): the model's distribution mixed
with one over the words that followed the recent positions whose features resemble the current one.

At position t the model has read x_1 .. x_t and predicts x_t+1 from its last-layer features h_t.  The cache
holds the W positions before t, each as its features h_i paired with the word that followed it, x_i+1:

    cache       (h_t-W, x_t-W+1)  ..  (h_t-1, x_t)         the pairs of the positions before t
    predicting  h_t -> x_t+1                                joins the cache only once it is scored

    p_cache(w) = sum over i with x_i+1 = w of softmax_i(theta * h_t . h_i)
    p(w)       = (1 - lambda) * p_model(w) + lambda * p_cache(w)

Both terms are distributions over the vocabulary, so the mixture is one, with a full or an adaptive
softmax alike; a word that is not in the cache keeps (1 - lambda) p_model(w), so only words already seen
can be pointed to, and the word being predicted is never among them.  At a document's first position the
cache is empty and p = p_model.

Cost: h_t's dot products with the W cached features, O(W H) per token, as one batched matrix product per
chunk of positions for all the rows of a batch; scoring needs only the cache's mass on each target, O(W),
never a vocabulary-sized vector (`distribution` forms one, for `nlm next`-like uses and the tests).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from nlm.text.symbols import PAD

CHUNK = 256  # positions whose attention over the cache is computed at once: memory B x CHUNK x (W + CHUNK)


class Attention(NamedTuple):
    """What a chunk of T positions sees of the M cached positions and of its own earlier ones."""

    scores: torch.Tensor  # h_t . h_i, float32 [B, T, M + T]
    allowed: torch.Tensor  # whether i is one of the W positions before t, bool [T, M + T]
    words: torch.Tensor  # the word that followed each position i, [B, M + T]
    same: torch.Tensor  # whether that word is t's target, bool [B, T, M + T]

    def weights(self, theta: float) -> torch.Tensor:
        """softmax_i(theta * h_t . h_i) over the allowed i; all zeros where none is allowed."""
        weights = torch.softmax((theta * self.scores).masked_fill(~self.allowed, -math.inf), dim=-1)
        return weights.masked_fill(~self.allowed.any(-1, keepdim=True), 0.0)

    def target_mass(self, theta: float) -> torch.Tensor:
        """p_cache(target) at every position [B, T]; NaN where the cache is empty (nothing to point to)."""
        mass = (self.weights(theta) * self.same).sum(-1)
        return mass.masked_fill(~self.allowed.any(-1), math.nan)


class PointerCache:
    """The cache of each row of a batch (each row is its own text), fed window after window, in order."""

    def __init__(self, window: int, *, theta: float, lam: float) -> None:
        self.window, self.theta, self.lam = window, theta, lam
        self.keys: torch.Tensor | None = None  # [B, M, H] the features of the last M <= W positions
        self.words: torch.Tensor | None = None  # [B, M] the word that followed each

    def start(self) -> None:
        """Forget everything: the next window begins new texts."""
        self.keys = self.words = None

    def mix(self, features: torch.Tensor, targets: torch.Tensor, nll: torch.Tensor) -> torch.Tensor:
        """-log p(target) under the mixture at every position of the window (float32 [B, T]), from the model's
        `nll` [B, T]; the window's positions join the cache as they are scored."""
        out = torch.empty(nll.shape, dtype=torch.float32, device=nll.device)
        for begin in range(0, targets.size(1), CHUNK):
            span = slice(begin, begin + CHUNK)
            attention = self.attend(features[:, span], targets[:, span])
            out[:, span] = mixture_nll(nll[:, span].float(), attention.target_mass(self.theta), self.lam)
        return out

    def distribution(self, features: torch.Tensor, targets: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
        """The mixture over the whole vocabulary at every position of a window, float64 [B, T, V], from the
        model's `log_probs` [B, T, V]: what `mix` scores, as a distribution (for the tests, and uses that
        need every word's probability)."""
        attention = self.attend(features, targets)
        weights = attention.weights(self.theta).double()  # [B, T, M + T]
        cache = torch.zeros(log_probs.shape, dtype=torch.float64, device=log_probs.device)
        cache.scatter_add_(2, attention.words[:, None, :].expand_as(weights), weights)
        model = log_probs.double().exp()
        seen = attention.allowed.any(-1)[None, :, None]
        return torch.where(seen, (1 - self.lam) * model + self.lam * cache, model)

    def attend(self, features: torch.Tensor, targets: torch.Tensor) -> Attention:
        """The attention of a chunk of positions over the cache and the chunk's earlier positions; then the
        chunk joins the cache, the last W positions kept."""
        features = features.detach().float()
        keys = features if self.keys is None else torch.cat([self.keys, features], 1)
        words = targets if self.words is None else torch.cat([self.words, targets], 1)
        steps, before = features.size(1), keys.size(1) - features.size(1)
        position = torch.arange(steps, device=keys.device)[:, None] + before  # t, counted from the cache's start
        other = torch.arange(keys.size(1), device=keys.device)[None, :]
        attention = Attention(
            scores=torch.bmm(features, keys.transpose(1, 2)),
            allowed=(other < position) & (other >= position - self.window),
            words=words,
            same=words[:, None, :] == targets[:, :, None],
        )
        self.keys, self.words = keys[:, -self.window :], words[:, -self.window :]
        return attention


def mixture_nll(nll: torch.Tensor, mass: torch.Tensor, lam: float) -> torch.Tensor:
    """-log((1 - lam) p_model + lam p_cache) from -log p_model and p_cache (NaN: an empty cache, p = p_model).
    With lam = 0 it returns `nll` itself, bit for bit."""
    log_lam = math.log(lam) if lam > 0 else -math.inf
    mixed = -torch.logaddexp(math.log1p(-lam) - nll, log_lam + torch.log(mass.nan_to_num(0.0)))
    return torch.where(mass.isnan(), nll, mixed)


# The grid `--tune-cache` searches: theta scales dot products of last-layer features (tanh-bounded, so with
# H units up to H), lambda is the cache's share.  AWD-LSTM's tuned values: theta 1.0 (PTB) and 0.662 (WikiText-2),
# lambda 0.1 and 0.128.
THETAS = (0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
LAMBDAS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)


class CacheGrid(PointerCache):
    """A cache that scores every (theta, lambda) of a grid at once, for `--tune-cache`: the attention is
    computed once per theta and the mixture once per pair; `mix` returns the model's own nll."""

    def __init__(self, window: int, *, thetas: tuple[float, ...], lams: tuple[float, ...]) -> None:
        super().__init__(window, theta=thetas[0], lam=lams[0])
        self.thetas, self.lams = thetas, lams
        self.nats = torch.zeros(len(thetas), len(lams), dtype=torch.float64)
        self.plain = 0.0  # nats without the cache
        self.tokens = 0

    def mix(self, features: torch.Tensor, targets: torch.Tensor, nll: torch.Tensor) -> torch.Tensor:
        for begin in range(0, targets.size(1), CHUNK):
            span = slice(begin, begin + CHUNK)
            attention = self.attend(features[:, span], targets[:, span])
            counted, model = targets[:, span] != PAD, nll[:, span].float()
            self.plain += float(model[counted].double().sum())
            self.tokens += int(counted.sum())
            for i, theta in enumerate(self.thetas):
                mass = attention.target_mass(theta)
                for j, lam in enumerate(self.lams):
                    self.nats[i, j] += float(mixture_nll(model, mass, lam)[counted].double().sum())
        return nll

    def best(self) -> tuple[float, float, float]:
        """(theta, lambda, nats per token) of the best pair."""
        i, j = divmod(int(torch.argmin(self.nats)), len(self.lams))
        return self.thetas[i], self.lams[j], float(self.nats[i, j]) / max(self.tokens, 1)

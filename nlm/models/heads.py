"""Output heads of the language model: a full softmax, or PyTorch's adaptive softmax (Grave et al. 2017).

Both keep the contract `RNNLM` promises its callers:

    head.nll(features [..., H], targets [...])    float32 nats of each target
    head.log_probs(features [..., H])              float32 [..., V], a normalised distribution

The adaptive head is `nn.AdaptiveLogSoftmaxWithLoss` itself.  With cutoffs c1 < c2 < ... the
ids [0, c1) form a shortlist scored in the head cluster together with one logit per tail
cluster; the ids [c1, c2), [c2, c3), ... each form a tail cluster of its own, projected
down to H / 4, H / 16, ... before its softmax:

    p(w) = softmax(head(h))[w]                                  w in the shortlist
    p(w) = softmax(head(h))[cluster k] * softmax(tail_k(h))[w]  w in cluster k

So the probabilities are exact and normalised; training (`nll`) evaluates a tail only for
the rows whose target falls in it, which is where the speed comes from.  Ids must run
from most to least frequent, as nlm's word and char vocabularies do (by count).

Tying (`tie`) shares the embedding matrix with the rows of the output layer that have the
same shape: all of `decoder.weight` for the full softmax, the shortlist rows of the head
cluster for the adaptive one.  The tail clusters stay untied: their words are scored in a
projected space of H / 4, H / 16, ... dimensions, which the embedding's rows do not live in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nlm.config import check
from nlm.errors import ConfigError
from nlm.models.choices import SOFTMAXES
from nlm.models.fused_nll import FusedNLL, Workspace

ADAPTIVE_DIV = 4.0  # each tail cluster projects to the previous one's size / 4 (PyTorch's and the paper's default)


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


class FullSoftmax(nn.Linear):
    """Every logit, one linear layer: `decoder.weight` [V, H] and `decoder.bias` [V], as always."""

    def __init__(self, hidden: int, vocab_size: int, cutoffs: tuple[int, ...] = ()) -> None:
        super().__init__(hidden, vocab_size)
        self.workspace = Workspace()  # where `nll` computes the logits, step after step (nlm/models/fused_nll.py)

    def tie(self, embedding: nn.Embedding) -> None:
        self.weight = embedding.weight

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self(features).float(), dim=-1)

    def nll(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        flat, targets_flat = features.reshape(-1, features.size(-1)), targets.reshape(-1)
        if (
            features.device.type == "cpu"
            and features.dtype == self.weight.dtype == torch.float32
            and not _cpu_autocast()
        ):
            return FusedNLL.apply(flat, self.weight, self.bias, targets_flat, self.workspace).view(targets.shape)
        # GPUs (whose caching allocator already reuses memory), autocast or another precision: autograd's path
        return F.cross_entropy(self(flat).float(), targets_flat, reduction="none").view(targets.shape)


class TiedHeadCluster(nn.Module):
    """The adaptive head cluster's linear layer with its shortlist rows taken from the embedding.

    Stands in for `AdaptiveLogSoftmaxWithLoss.head` (a Linear [shortlist + clusters, H]):
    the same product, with the rows of the shortlist shared and one row per tail cluster of its own.
    """

    def __init__(self, embedding: nn.Embedding, shortlist: int, clusters: int) -> None:
        super().__init__()
        self.shortlist = shortlist
        self.shared = embedding.weight  # [V, H], the same Parameter as embedding.weight
        self.clusters = nn.Parameter(
            torch.zeros(clusters, embedding.embedding_dim)
        )  # [clusters, H]; RNNLM initialises it
        self.bias = nn.Parameter(torch.zeros(shortlist + clusters))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([self.shared[: self.shortlist], self.clusters])
        return F.linear(features, weight, self.bias)


class AdaptiveSoftmax(nn.AdaptiveLogSoftmaxWithLoss):
    """PyTorch's adaptive softmax with the head's bias on, read through the nll / log_probs contract.

    Under bf16 autocast its products (the head cluster, the tails' projections) run in bfloat16 and
    everything after them in float32: each product's output is cast back by a forward hook before the
    module takes its log-softmax, and the module writes cluster log-probs into a buffer of its input's
    dtype, which is float32."""

    def __init__(self, hidden: int, vocab_size: int, cutoffs: tuple[int, ...]) -> None:
        super().__init__(hidden, vocab_size, list(cutoffs), div_value=ADAPTIVE_DIV, head_bias=True)
        for product in (self.head, *self.tail):
            product.register_forward_hook(_float32_output)

    def tie(self, embedding: nn.Embedding) -> None:
        self.head = TiedHeadCluster(embedding, self.shortlist_size, self.n_clusters)
        self.head.register_forward_hook(_float32_output)

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        flat = features.reshape(-1, features.size(-1)).float()
        return self.log_prob(flat).view(*features.shape[:-1], self.n_classes)

    def nll(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        flat = features.reshape(-1, features.size(-1)).float()
        # forward scores each target through its own cluster only: never all V logits
        return self(flat, targets.reshape(-1)).output.neg().view(targets.shape)


def _float32_output(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    """A forward hook: the module's output in float32 (bf16 under autocast; in float32 it is the output itself)."""
    return output.float()


HEADS = {"full": FullSoftmax, "adaptive": AdaptiveSoftmax}  # keyed by nlm.models.choices.SOFTMAXES


def check_head(softmax: str, cutoffs: tuple[int, ...], *, hidden: int, vocab_size: int) -> None:
    """ConfigError unless the softmax is known and its cutoffs fit it, the hidden size and the vocabulary
    (0: not known yet)."""
    check(softmax in SOFTMAXES, f"--softmax must be one of {', '.join(SOFTMAXES)}, not {softmax!r}")
    shown = ",".join(str(c) for c in cutoffs)
    if softmax == "full":
        check(not cutoffs, f"--cutoffs applies to --softmax adaptive only (got --cutoffs {shown})")
        return
    check(bool(cutoffs), "--softmax adaptive needs --cutoffs, increasing ids where clusters start (e.g. 2000,10000)")
    check(all(isinstance(c, int) and c > 0 for c in cutoffs), f"--cutoffs must be positive whole numbers, not {shown}")
    check(all(a < b for a, b in zip(cutoffs, cutoffs[1:])), f"--cutoffs must increase, not {shown}")
    check(
        vocab_size == 0 or cutoffs[-1] < vocab_size,
        f"--cutoffs {shown}: each cutoff must be below the vocabulary size ({vocab_size} symbols); "
        "drop the larger ones or use --softmax full",
    )
    check(
        hidden // ADAPTIVE_DIV ** len(cutoffs) >= 1,
        f"--hidden {hidden} is too small for {len(cutoffs)} tail clusters: the last would project to "
        f"hidden / {ADAPTIVE_DIV:g}^{len(cutoffs)} < 1 dimension; use fewer --cutoffs",
    )


def parse_cutoffs(text: str | None) -> tuple[int, ...]:
    """`--cutoffs 2000,10000` as a tuple; None or "" is none.  Checked against the head by RNNConfig."""
    if not text:
        return ()
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise ConfigError(f"--cutoffs must be comma-separated whole numbers such as 2000,10000, not {text!r}") from None


def build_head(softmax: str, *, hidden: int, vocab_size: int, cutoffs: tuple[int, ...]) -> nn.Module:
    return HEADS[softmax](hidden, vocab_size, cutoffs)

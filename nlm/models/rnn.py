"""The recurrent language model: embedding -> dropout -> RNN/LSTM/GRU -> dropout -> features -> output head.

Built on PyTorch's fused `nn.RNN`/`nn.LSTM`/`nn.GRU`, so CUDA runs cuDNN kernels.  The output
head (`nlm.models.heads`) is a full softmax or an adaptive one.  With `tie`, the output layer
shares the embedding matrix (Press & Wolf 2017; Inan et al. 2017), which needs `emb == hidden`;
by default a model ties exactly when they are equal.

The contract every caller uses (training, scoring, perplexity, generation):

    features, state = model(x [B, T], state)        features [B, T, H]
    model.nll(features, targets [B, T])             [B, T] nats at every position (mask <pad> yourself)
    model.log_probs(features)                       [..., V] a normalised distribution

so an output layer that never forms all V logits in training can stand in for the full one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from nlm.config import Config, check
from nlm.models.heads import build_head, check_head

CELLS = {
    "rnn-tanh": partial(nn.RNN, nonlinearity="tanh"),
    "rnn-relu": partial(nn.RNN, nonlinearity="relu"),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # h [L, B, H], or (h, c) for the LSTM


@dataclass(frozen=True)
class RNNConfig(Config):
    vocab_size: int = 0  # symbols, the four specials included; 0 until the vocabulary is known
    cell: str = "lstm"  # rnn-tanh | rnn-relu | lstm | gru
    layers: int = 2  # stacked recurrent layers
    emb: int = 200  # embedding size
    hidden: int = 200  # recurrent state size
    dropout: float = 0.2  # on embeddings, between layers and before the output layer
    tie: bool | None = None  # share the embedding and output matrices (needs emb == hidden); None: tie when emb == hidden
    init_range: float = 0.1  # weights start uniform in [-init_range, init_range] (Zaremba et al.)
    softmax: str = "full"  # output head: full | adaptive (nlm.models.heads)
    cutoffs: tuple[int, ...] = ()  # adaptive: ids where the tail clusters start, increasing, below vocab_size

    def __post_init__(self) -> None:
        if self.tie is None:  # the default ties exactly where it applies; the stored config says which
            object.__setattr__(self, "tie", self.emb == self.hidden)
        super().__post_init__()

    def validate(self) -> None:
        check(self.cell in CELLS, f"--cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        check(self.vocab_size == 0 or self.vocab_size > 4,
              f"a vocabulary of {self.vocab_size} symbols has nothing besides the specials")
        check(self.layers >= 1, f"--layers must be at least 1, not {self.layers}")
        check(self.emb >= 1 and self.hidden >= 1, "--emb and --hidden must be at least 1")
        check(0 <= self.dropout < 1, f"--dropout must be in [0, 1), not {self.dropout}")
        check(self.init_range > 0, f"--init-range must be positive, not {self.init_range}")
        check(not self.tie or self.emb == self.hidden,
              f"--tie needs --emb equal to --hidden (got emb {self.emb}, hidden {self.hidden})")
        check_head(self.softmax, self.cutoffs, hidden=self.hidden, vocab_size=self.vocab_size)


class RNNLM(nn.Module):
    """`forward(x [B, T], state) -> (features [B, T, H], state)`; `nll` and `log_probs` read the features."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.emb)
        self.drop = nn.Dropout(config.dropout)
        self.rnn = CELLS[config.cell](
            config.emb, config.hidden, config.layers, batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.decoder = build_head(config.softmax, hidden=config.hidden, vocab_size=config.vocab_size, cutoffs=config.cutoffs)
        if config.tie:
            self.decoder.tie(self.embedding)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = self.config.init_range
        for name, p in self.named_parameters():
            if name.startswith("decoder.") and name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -r, r)

    def init_state(self, batch_size: int) -> State:
        """A zero state on the weights' own device and dtype."""
        weight = self.embedding.weight
        h = weight.new_zeros(self.config.layers, batch_size, self.config.hidden)
        return (h, h.clone()) if self.config.cell == "lstm" else h

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        emb = self.drop(self.embedding(x))
        output, state = self.rnn(emb, state)
        return self.drop(output), state

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every symbol, float32 [..., V], from features [..., H]."""
        return self.decoder.log_probs(features)

    def nll(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """-log p(target) at every position, float32 with the shape of `targets`."""
        return self.decoder.nll(features, targets)


def detach_state(state: State) -> State:
    """Cut the graph at a window boundary: later windows see the values but do not back-propagate into earlier ones."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def select_state(state: State, rows: torch.Tensor) -> State:
    """The state of a subset of batch rows (rows index dim 1)."""
    return tuple(s[:, rows] for s in state) if isinstance(state, tuple) else state[:, rows]

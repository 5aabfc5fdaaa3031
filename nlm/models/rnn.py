"""The recurrent language model: embedding -> dropout -> RNN/LSTM/GRU -> dropout -> features -> output head.

Built on PyTorch's fused `nn.RNN`/`nn.LSTM`/`nn.GRU`, so CUDA runs cuDNN kernels.  The output
head (`nlm.models.heads`) is a full softmax or an adaptive one.  With
`tie`, the output layer shares the embedding matrix (Press & Wolf 2017; Inan et al.
2017), which needs `emb` equal to the last layer's size; by default a model ties exactly
when they are equal.

The AWD-LSTM regularisers (Merity et al. 2017; nlm/models/regularisers.py) are options,
all off by default: embedding dropout, a dropout rate per place (embeddings, between
layers, output), locked (variational) dropout, weight drop on the hidden-to-hidden
matrices, a last layer of its own size, and AR/TAR penalties (`activation_penalty`).
Weight drop, locked dropout or a last layer of its own size need one recurrent module per
layer (`stack`, nlm/models/recurrent.py); otherwise the model is exactly the fused
multi-layer module it always was (`rnn`), with the same parameter names and random draws.

The contract every caller uses (training, scoring, perplexity, generation):

    features, state = model(x [B, T], state)        features [B, T, H]
    model.nll(features, targets [B, T])             [B, T] nats at every position (mask <pad> yourself)
    model.log_probs(features)                       [..., V] a normalised distribution

so an output layer that never forms all V logits in training can stand in for the full one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from nlm.config import Config, check
from nlm.models.choices import CELLS, RNN_INITS
from nlm.models.heads import build_head, check_head
from nlm.models.recurrent import LayerState, RecurrentStack, set_forget_bias
from nlm.models.regularisers import activation_penalty, dropout, embedding_dropout

CELL_MODULES = {  # keyed by nlm.models.choices.CELLS
    "rnn-tanh": partial(nn.RNN, nonlinearity="tanh"),
    "rnn-relu": partial(nn.RNN, nonlinearity="relu"),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}

# The fused stack's state: h [L, B, H], or (h, c) for the LSTM; a per-layer stack's: a list of those, [1, B, H_l] each.
State = LayerState | list[LayerState]
# The attributes that hold the recurrent layers: one fused module, whose parameters are `weight_hh_l{N}`...,
# or one module per layer (`stack.layers.{N}.weight_hh_l0`); `RNNLM.recurrent` is whichever a model has.
BODIES = ("rnn", "stack")
_LAYER = re.compile(r"^layers\.(\d+)\.|_l(\d+)")


def layer_name(parameter: str) -> str:
    """The part of the model a parameter belongs to: `embedding`, `rnn layer 1` (1-based), `decoder`..."""
    head, _, rest = parameter.partition(".")
    if head not in BODIES:
        return head
    match = _LAYER.search(rest)
    return f"rnn layer {int(next(g for g in match.groups() if g is not None)) + 1}" if match else "rnn"


@dataclass(frozen=True)
class RNNConfig(Config):
    vocab_size: int = 0  # symbols, the four specials included; 0 until the vocabulary is known
    cell: str = "lstm"  # rnn-tanh | rnn-relu | lstm | gru
    layers: int = 2  # stacked recurrent layers
    emb: int = 200  # embedding size
    hidden: int = 200  # recurrent state size
    dropout: float = 0.2  # on embeddings, between layers and before the output layer (where no rate below is set)
    tie: bool | None = (
        None  # share the embedding and output matrices (needs emb == the last layer's size); None: tie when equal
    )
    init_range: float = 0.1  # weights start uniform in [-init_range, init_range] (Zaremba et al.)
    # AWD-LSTM (Merity et al. 2017); the defaults leave the model as above.  AWD's PTB values in brackets.
    dropout_input: float | None = None  # on the embeddings [0.65]; None: dropout
    dropout_hidden: float | None = None  # between recurrent layers [0.3]; None: dropout
    dropout_output: float | None = None  # on the last layer's output, before the output layer [0.4]; None: dropout
    locked_dropout: bool = False  # those three draw one mask per sequence, shared by every time step [on]
    emb_dropout: float = 0.0  # drop whole word types from the embedding matrix, a new draw per batch [0.1]
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden matrices, a new mask per step [0.5]
    last_hidden: int | None = None  # the last layer's size, what the output layer reads [400 = emb]; None: hidden
    ar: float = 0.0  # activation regularisation: alpha * mean(dropped last-layer output ** 2) joins the loss [2]
    tar: float = 0.0  # temporal AR: beta * mean((h_t - h_t-1) ** 2) of the undropped last-layer output [1]
    rnn_init: str = "uniform"  # recurrent weights: uniform (+-init_range) | pytorch (+-1/sqrt(layer size)) [pytorch]
    forget_bias: float | None = (
        None  # LSTM: start every forget gate's bias here (1: remember by default); None: as the rest
    )
    softmax: str = "full"  # output head: full | adaptive (nlm.models.heads)
    cutoffs: tuple[int, ...] = ()  # adaptive: ids where the tail clusters start, increasing, below vocab_size

    def __post_init__(self) -> None:
        if self.tie is None:  # the default ties exactly where it applies; the stored config says which
            object.__setattr__(self, "tie", self.emb == self.feature_size)
        super().__post_init__()

    @property
    def feature_size(self) -> int:
        """The last layer's size: the features the output layer reads."""
        return self.hidden if self.last_hidden is None else self.last_hidden

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """The embedding size, then each layer's output size."""
        return (self.emb, *[self.hidden] * (self.layers - 1), self.feature_size)

    @property
    def per_layer(self) -> bool:
        """One recurrent module per layer (nlm/models/recurrent.py) instead of the fused multi-layer one."""
        return self.weight_drop > 0 or self.locked_dropout or self.feature_size != self.hidden

    def dropout_rates(self) -> tuple[float, float, float]:
        """The dropout on the embeddings, between layers and on the output, `dropout` filling the unset ones."""
        rates = (self.dropout_input, self.dropout_hidden, self.dropout_output)
        return tuple(self.dropout if rate is None else rate for rate in rates)  # type: ignore[return-value]

    def validate(self) -> None:
        check(self.cell in CELLS, f"--cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        check(
            self.vocab_size == 0 or self.vocab_size > 4,
            f"a vocabulary of {self.vocab_size} symbols has nothing besides the specials",
        )
        check(self.layers >= 1, f"--layers must be at least 1, not {self.layers}")
        check(self.emb >= 1 and self.hidden >= 1, "--emb and --hidden must be at least 1")
        check(self.init_range > 0, f"--init-range must be positive, not {self.init_range}")
        self._validate_regularisers()
        check(
            self.last_hidden is None or self.last_hidden >= 1,
            f"--last-hidden must be at least 1, not {self.last_hidden}",
        )
        check(
            self.layers > 1 or self.feature_size == self.hidden,
            "--last-hidden needs --layers 2 or more; a one-layer model's size is --hidden",
        )
        last = "--hidden" if self.last_hidden is None else "--last-hidden"  # the option that sets the last layer's size
        check(
            not self.tie or self.emb == self.feature_size,
            f"--tie needs --emb equal to {last} (got emb {self.emb}, {last.lstrip('-')} {self.feature_size})",
        )

    def _validate_regularisers(self) -> None:
        rates = {
            "--dropout": self.dropout,
            "--dropout-input": self.dropout_input,
            "--dropout-hidden": self.dropout_hidden,
            "--dropout-output": self.dropout_output,
            "--emb-dropout": self.emb_dropout,
            "--weight-drop": self.weight_drop,
        }
        for flag, rate in rates.items():
            check(rate is None or 0 <= rate < 1, f"{flag} must be in [0, 1), not {rate}")
        check(self.ar >= 0 and self.tar >= 0, f"--ar and --tar must be >= 0 (got {self.ar}, {self.tar})")
        check(self.rnn_init in RNN_INITS, f"--rnn-init must be one of {', '.join(RNN_INITS)}, not {self.rnn_init!r}")
        check(self.forget_bias is None or self.cell == "lstm", "--forget-bias applies to --cell lstm only")
        check_head(self.softmax, self.cutoffs, hidden=self.feature_size, vocab_size=self.vocab_size)


class RNNLM(nn.Module):
    """`forward(x [B, T], state) -> (features [B, T, H], state)`; `nll` and `log_probs` read the features."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.emb)
        self.dropout_input, between, self.dropout_output = config.dropout_rates()
        if config.per_layer:
            self.stack = RecurrentStack(
                CELL_MODULES[config.cell],
                config.layer_sizes,
                dropout=between,
                locked=config.locked_dropout,
                weight_drop=config.weight_drop,
            )
        else:
            self.rnn = CELL_MODULES[config.cell](
                config.emb,
                config.hidden,
                config.layers,
                batch_first=True,
                dropout=between if config.layers > 1 else 0.0,
            )
        self.last_raw_output: torch.Tensor | None = (
            None  # the last layer's undropped output of a training forward (TAR)
        )
        self.decoder = build_head(
            config.softmax, hidden=config.feature_size, vocab_size=config.vocab_size, cutoffs=config.cutoffs
        )
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
        if self.config.rnn_init == "pytorch":
            for layer in self.recurrent.modules():
                if isinstance(layer, nn.RNNBase):
                    layer.reset_parameters()  # uniform in +-1/sqrt(its size), as AWD-LSTM leaves them
        if self.config.forget_bias is not None:
            set_forget_bias(self.recurrent, self.config.forget_bias)

    @property
    def recurrent(self) -> nn.Module:
        """The recurrent body: the fused multi-layer module, or the per-layer stack."""
        return self.stack if self.config.per_layer else self.rnn

    def init_state(self, batch_size: int) -> State:
        """A zero state on the weights' own device and dtype."""
        config, weight = self.config, self.embedding.weight

        def zeros(layers: int, size: int) -> LayerState:
            h = weight.new_zeros(layers, batch_size, size)
            return (h, h.clone()) if config.cell == "lstm" else h

        if config.per_layer:
            return [zeros(1, size) for size in config.layer_sizes[1:]]
        return zeros(config.layers, config.hidden)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        locked = self.config.locked_dropout
        emb = embedding_dropout(self.embedding, x, self.config.emb_dropout, self.training)
        emb = dropout(emb, self.dropout_input, training=self.training, locked=locked)
        output, state = self.recurrent(emb, state)
        # batch_first modules return a [T, B, H] buffer seen as [B, T, H]; made contiguous (a 0.1 ms copy), the
        # output layer reads it as one [B * T, H] matrix (addmm) instead of B small ones (bmm: ~40% slower on a CPU)
        output = output.contiguous()
        self.last_raw_output = output if self.training and self.config.tar else None
        return dropout(output, self.dropout_output, training=self.training, locked=locked), state

    def activation_penalty(self, features: torch.Tensor) -> torch.Tensor | None:
        """alpha * AR + beta * TAR for the training forward that returned `features`; None when both are off."""
        if not (self.config.ar or self.config.tar):
            return None
        return activation_penalty(features, self.last_raw_output, ar=self.config.ar, tar=self.config.tar)

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every symbol, float32 [..., V], from features [..., H]."""
        return self.decoder.log_probs(features)

    def nll(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """-log p(target) at every position, float32 with the shape of `targets`."""
        return self.decoder.nll(features, targets)


def map_state(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    """`fn` applied to every tensor of a state, its structure (per-layer list, (h, c) pairs) kept."""
    if isinstance(state, list):
        return [map_state(layer, fn) for layer in state]  # type: ignore[misc]
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def detach_state(state: State) -> State:
    """Cut the graph at a window boundary: later windows see the values but do not back-propagate into earlier ones."""
    return map_state(state, torch.Tensor.detach)


def select_state(state: State, rows: torch.Tensor) -> State:
    """The state of a subset of batch rows (rows index dim 1)."""
    return map_state(state, lambda s: s[:, rows])


def cat_states(states: list[State]) -> State:
    """The states of several batches as one batch (rows concatenated along dim 1), their structure kept."""
    first = states[0]
    if isinstance(first, list):
        return [cat_states([s[layer] for s in states]) for layer in range(len(first))]  # type: ignore[index]
    if isinstance(first, tuple):
        return tuple(torch.cat([s[part] for s in states], dim=1) for part in range(len(first)))  # type: ignore[index]
    return torch.cat(states, dim=1)  # type: ignore[arg-type]

"""The yardstick for nlm's training speed: the PyTorch word-language-model example's loop, bare.

This is how pytorch/examples `word_language_model` (main.py, model.py) trains, restated in our
own words and importing nothing from nlm, so the comparison cannot drift with nlm:

  - the corpus is read whole into one tensor of ids (split on whitespace, `<eos>` after every
    line, ids in order of first appearance) and batchified into B columns, seq-first [L, B];
  - the model is the example's RNNModel: embedding -> dropout -> `nn.LSTM` (seq-first, dropout
    between layers) -> dropout -> linear decoder, tied to the embedding, then `log_softmax`;
  - every window: detach the hidden state, `model.zero_grad()`, forward, `nll_loss`, backward,
    `clip_grad_norm_`, then a hand-written SGD update `p.data.add_(p.grad, alpha=-lr)`, and
    `loss.item()` added to the running total the example prints.

    python bench/reference_loop.py [--steps 150] [--threads 1]     # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

PTB_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptb" / "ptb.train.txt"
# The example's PTB configuration, with --tied (nlm ties by default when --emb equals --hidden).
SETTINGS = dict(emb=200, hidden=200, layers=2, dropout=0.2, batch_size=20, bptt=35, lr=20.0, clip=0.25)


def read_ids(path: Path) -> tuple[torch.Tensor, int]:
    """Every token of `path` as one long tensor, `<eos>` closing each line; and the vocabulary size."""
    index: dict[str, int] = {}
    ids: list[int] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            for word in line.split() + ["<eos>"]:
                ids.append(index.setdefault(word, len(index)))
    return torch.tensor(ids, dtype=torch.long), len(index)


def columns(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """[L, B]: the stream cut into B equal parts (the tail dropped), part b in column b."""
    length = ids.numel() // batch_size
    return ids[: length * batch_size].view(batch_size, length).t().contiguous()


class ExampleLSTM(nn.Module):
    """The example's RNNModel, LSTM and tied: forward(x [T, B], hidden) -> (log-probs [T * B, V], hidden)."""

    def __init__(self, vocab_size: int, *, emb: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.vocab_size, self.layers, self.hidden = vocab_size, layers, hidden
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab_size, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, dropout=dropout)
        self.decoder = nn.Linear(hidden, vocab_size)
        self.decoder.weight = self.encoder.weight  # tied (Press & Wolf; Inan et al.)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)  # the example sets these two; the LSTM keeps PyTorch's init
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]):
        output, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        logits = self.decoder(self.drop(output)).view(-1, self.vocab_size)
        return F.log_softmax(logits, dim=1), hidden

    def init_hidden(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = next(self.parameters())
        return (
            weight.new_zeros(self.layers, batch_size, self.hidden),
            weight.new_zeros(self.layers, batch_size, self.hidden),
        )


def detached(hidden):
    """The example's repackage_hidden: the same values, cut from the graph of the window before."""
    return hidden.detach() if isinstance(hidden, torch.Tensor) else tuple(detached(h) for h in hidden)


def train_steps(
    model: ExampleLSTM, data: torch.Tensor, *, steps: int, lr: float, clip: float, bptt: int
) -> tuple[int, float, float]:
    """`steps` training windows from the start of `data` [L, B]: (tokens, seconds, mean loss)."""
    model.train()
    total_loss, tokens, done = 0.0, 0, 0
    start = time.perf_counter()
    hidden = model.init_hidden(data.size(1))
    for step, i in enumerate(range(0, data.size(0) - 1, bptt)):
        if step == steps:
            break
        length = min(bptt, data.size(0) - 1 - i)
        inputs, targets = data[i : i + length], data[i + 1 : i + 1 + length].view(-1)
        model.zero_grad()
        hidden = detached(hidden)
        log_probs, hidden = model(inputs, hidden)
        loss = F.nll_loss(log_probs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        total_loss += loss.item()
        tokens, done = tokens + targets.numel(), done + 1
    return tokens, time.perf_counter() - start, total_loss / max(done, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=PTB_TRAIN, help="training text (default: ../shared/data/ptb)")
    parser.add_argument("--steps", type=int, default=150, help="training windows to time")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ids, vocab_size = read_ids(args.data)
    s = SETTINGS
    model = ExampleLSTM(vocab_size, emb=s["emb"], hidden=s["hidden"], layers=s["layers"], dropout=s["dropout"])
    tokens, seconds, loss = train_steps(
        model, columns(ids, s["batch_size"]), steps=args.steps, lr=s["lr"], clip=s["clip"], bptt=s["bptt"]
    )
    print(
        json.dumps(
            {
                "path": "bare",
                "steps": args.steps,
                "tokens": tokens,
                "seconds": round(seconds, 4),
                "tokens_per_s": round(tokens / seconds, 1),
                "loss": round(loss, 4),
                "vocab": vocab_size,
            }
        )
    )


if __name__ == "__main__":
    main()

"""The reference for Tiny Shakespeare at equal time: a character LSTM as a user writes it in bare PyTorch.

    taskset -c 1 python bench/char_reference.py --minutes 15 [--out runs/bench/char-reference.json]
    python bench/char_reference.py --compare runs/bench/shakespeare-char --reference runs/bench/char-reference.json

(`make bench-char` runs it beside `nlm train --recipe shakespeare-char` and then compares the two.)

A 2 x 512 LSTM over an embedding of 128, dropout 0.2 on its input and output, Adam at 2e-3, batch 64,
bptt 100, gradient norm clipped to 5, one torch thread; the text is one stream of characters (the newline
is a character, as nlm's `<eos>` is), cut into 64 rows and read in windows with the state carried and
detached.  It trains until --minutes of training have passed (the clock stops during validation), and
validates at every epoch's end and when the time is up: the mean negative log-likelihood per character
(nats) of ../shared/data/tinyshakespeare/valid.txt, read the same way in 10 rows.  The best is the figure,
to compare with `nlm train --recipe shakespeare-char` trained side by side for the same time.

It imports nothing from nlm, on purpose: it is what the comparison is against.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import time
from pathlib import Path

import torch
from torch import nn

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare"


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, emb: int = 128, hidden: int = 512, layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(emb, hidden, layers, dropout=dropout, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        output, state = self.lstm(self.drop(self.embedding(x)), state)
        return self.out(self.drop(output)), state


def rows(ids: torch.Tensor, count: int) -> torch.Tensor:
    length = len(ids) // count
    return ids[: length * count].view(count, length)


def windows(data: torch.Tensor, bptt: int):
    for begin in range(0, data.size(1) - 1, bptt):
        end = min(begin + bptt, data.size(1) - 1)
        yield data[:, begin:end], data[:, begin + 1 : end + 1]


def validate(model: CharLSTM, valid: torch.Tensor, bptt: int) -> float:
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for x, y in windows(valid, bptt):
            logits, state = model(x, state)
            total += float(
                nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
            )
            count += y.numel()
    model.train()
    return total / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bptt", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--clip", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, help="an nlm run folder: compare its best with --reference's")
    parser.add_argument("--reference", type=Path, help="the JSON this script wrote with --out")
    args = parser.parse_args()
    if args.compare:
        return compare(args.compare, args.reference)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    train_text = (DATA / "train.txt").read_text(encoding="utf-8")
    valid_text = (DATA / "valid.txt").read_text(encoding="utf-8")
    for name in ("train.txt", "valid.txt"):
        print(f"data: tinyshakespeare/{name} sha256 {hashlib.sha256((DATA / name).read_bytes()).hexdigest()}")
    symbols = sorted(set(train_text))
    index = {c: i for i, c in enumerate(symbols)}
    unknown = len(symbols)  # a character of the validation text that training never saw
    train = rows(torch.tensor([index[c] for c in train_text]), args.batch_size)
    valid = rows(torch.tensor([index.get(c, unknown) for c in valid_text]), 10)
    model = CharLSTM(len(symbols) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, {len(symbols)} characters"
    )
    budget, trained, epoch, steps, history = args.minutes * 60, 0.0, 0, 0, []
    while trained < budget:
        state, epoch = None, epoch + 1
        for x, y in windows(train, args.bptt):
            start = time.perf_counter()
            logits, state = model(x, state)
            state = tuple(s.detach() for s in state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            trained, steps = trained + time.perf_counter() - start, steps + 1
            if trained >= budget:
                break
        nats = validate(model, valid, args.bptt)
        history.append({"epoch": epoch, "steps": steps, "minutes": trained / 60, "valid_nats": nats})
        print(
            f"epoch {epoch} | step {steps} | {trained / 60:.1f} min | valid {nats:.4f} nats/char, "
            f"{nats / math.log(2):.4f} bits/char",
            flush=True,
        )
    best = min(h["valid_nats"] for h in history)
    print(
        f"best valid {best:.4f} nats/char ({best / math.log(2):.4f} bits/char) after {steps} steps, "
        f"{trained / 60:.1f} min of training"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"best_valid_nats": best, "history": history, "args": vars(args)}, default=str, indent=2) + "\n"
        )
    return 0


def compare(run: Path, reference: Path) -> int:
    """The table of the two runs: nlm's best validation loss (its metrics.jsonl) against this model's."""
    bare = json.loads(reference.read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [m for m in metrics if m.get("split") == "valid"]
    ours = min(m["loss"] for m in valid)
    last = metrics[-1]
    print("| run | epochs | training time | best validation nats/char (bits/char) |")
    print("|---|---:|---:|---:|")
    history = bare["history"][-1]
    print(
        f"| bare PyTorch 2 x 512 LSTM (bench/char_reference.py) | {history['epoch']} | {history['minutes']:.1f} min | "
        f"{bare['best_valid_nats']:.4f} ({bare['best_valid_nats'] / math.log(2):.4f}) |"
    )
    print(
        f"| nlm {run.name} | {last['epoch']} ({last['step']:,} steps, stopped by {last.get('stop', '?')}) | "
        f"{last['elapsed'] / 60:.1f} min | {ours:.4f} ({ours / math.log(2):.4f}) |"
    )
    print(f"\nnlm / bare: {ours / bare['best_valid_nats']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

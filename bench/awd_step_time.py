"""Benchmark: the cost of each AWD-LSTM regulariser per training step, against the fused model.

    python bench/awd_step_time.py [--device cpu|cuda] [--size small|awd] [--steps N] [--threads T]

Random tokens, no data needed.  Each configuration trains `--steps` SGD steps (after three
warm-up steps) on windows of [batch, bptt] and reports milliseconds per step: the fused
multi-layer module (today's default), the per-layer stack of the same sizes with locked
dropout, then weight drop, embedding dropout, AR/TAR and AWD's smaller tied last layer added
one at a time.  `--size awd` is the PTB model of
Merity et al. (400 -> 1150 -> 1150 -> 400, 10k words, batch 80, bptt 70); `small` fits a CPU.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine

from nlm.models.rnn import RNNLM, RNNConfig

SIZES = {
    "small": dict(vocab=10_000, emb=200, hidden=400, last=200, batch=20, bptt=35),
    "awd": dict(vocab=10_000, emb=400, hidden=1150, last=400, batch=80, bptt=70),
}


def configs(size: dict) -> dict[str, RNNConfig]:
    base = RNNConfig(vocab_size=size["vocab"], emb=size["emb"], hidden=size["hidden"], layers=3, dropout=0.4, tie=False)
    locked = base.replace(locked_dropout=True, dropout_input=0.65, dropout_hidden=0.3)
    return {
        "fused (today)": base,
        "per-layer, locked": locked,
        "+ weight drop 0.5": (wd := locked.replace(weight_drop=0.5)),
        "+ emb dropout 0.1": (ed := wd.replace(emb_dropout=0.1)),
        "+ AR 2, TAR 1": (ar := ed.replace(ar=2.0, tar=1.0)),
        "+ last layer = emb, tied": ar.replace(last_hidden=size["emb"], tie=True),
    }


def time_steps(config: RNNConfig, size: dict, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = RNNLM(config).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    tokens = torch.randint(4, size["vocab"], (size["batch"], size["bptt"] + 1), device=device)
    for step in range(steps + 3):
        if step == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        features, _ = model(tokens[:, :-1])
        loss = model.nll(features, tokens[:, 1:]).mean()
        penalty = model.activation_penalty(features)
        loss = loss if penalty is None else loss + penalty
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, size = torch.device(args.device), SIZES[args.size]
    print(f"# {machine()}; device {device}, {args.threads} thread(s); size {args.size}: {size}")
    for name, config in configs(size).items():
        print(f"{name:26s} {time_steps(config, size, args.steps, device):8.1f} ms/step", flush=True)


if __name__ == "__main__":
    main()

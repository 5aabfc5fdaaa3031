"""Benchmark: peak memory of scoring one very long line, windowed against one forward pass.

    python bench/long_line.py [--tokens 2000000] [--vocab 256] [--budget N]

Scores a single line of random ids with an untrained one-layer LSTM (16 units), each run
in a fresh child process so that its peak RSS is its own: once with the default logit
budget (windows of LOGIT_BUDGET // vocab steps, the state carried) and once with a budget
that fits the whole line (one pass, as nlm scored before windows).  The two log-probs must
agree; the peak RSS of the one-pass run grows with tokens x vocabulary, the windowed one
only with the tokens.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import machine

CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from nlm.lm.scoring import score_ids
from nlm.models.rnn import RNNLM, RNNConfig
tokens, vocab, budget = (int(a) for a in sys.argv[1:4])
torch.manual_seed(0)
model = RNNLM(RNNConfig(vocab_size=vocab, emb=16, hidden=16, layers=1, dropout=0.0)).eval()
ids = torch.randint(4, vocab, (tokens,)).tolist()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
scores, = score_ids(model, [ids], start_id=3, logit_budget=budget)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "logprob": float(scores.sum()), "rss_before_mb": before / 1024,
                  "peak_rss_mb": peak / 1024}))
"""


def run(tokens: int, vocab: int, budget: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tokens), str(vocab), str(budget)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    from nlm.lm.scoring import LOGIT_BUDGET

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--budget", type=int, default=LOGIT_BUDGET, help="logits per forward pass of the windowed run")
    args = parser.parse_args()
    print(f"# {machine()}; one line of {args.tokens:,} tokens, vocabulary {args.vocab}")
    started = time.perf_counter()
    windowed = run(args.tokens, args.vocab, args.budget)
    one_pass = run(args.tokens, args.vocab, (args.tokens + 1) * args.vocab)
    for name, r in (("windowed", windowed), ("one pass", one_pass)):
        print(
            f"{name:9} peak RSS {r['peak_rss_mb']:7,.0f} MB (ids alone {r['rss_before_mb']:,.0f} MB), "
            f"{r['seconds']:.1f} s, log-prob {r['logprob']:.4f}"
        )
    agree = abs(windowed["logprob"] - one_pass["logprob"]) <= 1e-5 * args.tokens
    print(f"log-probs agree to 1e-5 per token: {'yes' if agree else 'NO'}; wall {time.perf_counter() - started:.0f} s")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()

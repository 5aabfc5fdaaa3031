"""Scoring one input in many processes (torchrun), from Python as `nlm score -o FILE` does it.

    with scoring_share(["crawl.txt.gz"], output="scores.tsv", totals=CorpusSummary) as share:
        lm = nlm.load("runs/ptb", device=share.device("auto"))
        summary = CorpusSummary()
        for s in share.scores(lm.iter_scores, batch_size=64):
            summary.add(s)
            share.stream.write(f"{s.logprob}\\n")
        share.result = summary
    print(share.total.ppl)        # summed over every process

Run the script under `torchrun --nproc-per-node N script.py`: each process scores its contiguous
share of the lines, and `scores.tsv` holds what one process would write.  Alone, it is one process.
The work is nlm/lm/distributed_scoring.py's.
"""

from __future__ import annotations

from nlm.lm.distributed_scoring import ScoringShare, scoring_share

__all__ = ["ScoringShare", "scoring_share"]

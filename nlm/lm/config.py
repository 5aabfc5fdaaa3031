"""How a language model reads its text: stream or sentence mode, batch and window sizes, the start symbol;
and the log bases its scores can be written in."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nlm.config import Config, check
from nlm.text.symbols import BOS, EOS

MODES = ("stream", "sentence")  # also the protocols of `nlm perplexity`
LOG_BASES = {"e": 1.0, "2": math.log(2), "10": math.log(10)}  # divide a natural log by this for base b


@dataclass(frozen=True)
class LMDataConfig(Config):
    mode: str = "stream"  # stream: rows of the whole text with a carried state; sentence: each line alone
    batch_size: int = 20  # parallel rows (stream) or sentences per batch (sentence)
    bptt: int = 35  # steps per window before the state is detached (stream)
    eval_batch_size: int = 10  # rows when evaluating (stream)
    variable_bptt: bool = (
        False  # stream: window lengths drawn around bptt, the step's lr scaled by length / bptt (AWD-LSTM)
    )

    def validate(self) -> None:
        check(self.mode in MODES, f"--mode must be stream or sentence, not {self.mode!r}")
        check(self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}")
        check(self.bptt >= 1, f"--bptt must be at least 1, not {self.bptt}")
        check(self.eval_batch_size >= 1, f"--eval-batch-size must be at least 1, not {self.eval_batch_size}")
        check(not self.variable_bptt or self.mode == "stream", "--variable-bptt applies to --mode stream only")

    @property
    def start_id(self) -> int:
        """What a sentence is conditioned on: <bos> in sentence mode; in stream mode the
        model only ever saw a sentence begin after the previous one's <eos>."""
        return BOS if self.mode == "sentence" else EOS

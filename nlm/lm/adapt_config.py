"""Adapting a language model to the text it scores, as settings: the continuous cache pointer and dynamic evaluation.

    cache       Grave, Joulin & Usunier 2017 (arXiv:1612.04426): the last `cache` positions' last-layer
                features h_i, each with the word that followed it, vote for those words with weights
                exp(theta * h_t . h_i); p = (1 - lambda) p_model + lambda p_cache  (nlm/lm/cache.py)
    dynamic     Krause, Kahembwe, Murray & Renals 2018 (arXiv:1709.07432): after a segment is scored, one
                gradient step on it, pulled back towards the trained weights  (nlm/lm/dynamic.py)

The names are those of the options of `nlm score` and `nlm perplexity` (`cache_theta` is `--cache-theta`),
and of the keyword arguments of `LanguageModel.score` and `.perplexity`.  Torch-free, so the command line
declares its options from it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from nlm.config import Config, check, option_name
from nlm.errors import ConfigError

DYN_RULES = ("rms", "sgd")  # Krause et al.'s RMS-normalised update, or plain SGD
# The defaults were chosen on PTB: --tune-cache's choice on the first half of ptb.valid.txt (window 500) for a
# ptb-25min model trained 8,000 steps, and the best of a grid on its first 400 lines for dynamic evaluation
# (rms: lr 5e-5 .. 1e-3 x decay 0.002 .. 0.02, Krause et al.'s 2e-4 and 0.008 among them; sgd: 0.1 .. 2 x 0 .. 0.01).
CACHE_THETA = 0.7  # the pointer's sharpness when --cache-theta is not given (AWD-LSTM: 1.0 PTB, 0.662 WikiText-2)
CACHE_LAMBDA = 0.15  # the cache's weight in the mixture when --cache-lambda is not given (AWD-LSTM: 0.1, 0.128)
# Each rule's learning rate and decay towards the trained weights when --dyn-lr / --dyn-decay are not given,
# for segments of DYN_SEGMENT tokens.
DYN_DEFAULTS = {"rms": (1e-4, 0.02), "sgd": (1.0, 0.01)}
DYN_SEGMENT = 20
DYN_EPSILON = 2e-5  # added to the RMS statistics before dividing by them (Krause et al.'s epsilon)


@dataclass(frozen=True)
class Adaptation(Config):
    cache: int = 0  # W: positions the pointer remembers; 0: no cache
    cache_theta: float | None = None  # theta: the sharpness of the pointer's attention; None: CACHE_THETA
    cache_lambda: float | None = None  # lambda: the cache's weight in the mixture; None: CACHE_LAMBDA
    tune_cache: str | None = None  # a validation text to choose theta and lambda on (a small grid) before scoring
    dynamic_eval: bool = False  # learn from each segment after scoring it
    dyn_lr: float | None = None  # the step size; None: the rule's default (DYN_DEFAULTS)
    dyn_decay: float | None = None  # the pull back towards the trained weights; None: the rule's default
    dyn_segment: int = DYN_SEGMENT  # tokens scored between two updates
    dyn_stats: str | None = None  # training text for the RMS rule's gradient statistics
    dyn_rule: str = "rms"  # rms | sgd
    dyn_carry: bool = False  # score: the lines are one document in order (the weights carry from line to line)

    def validate(self) -> None:
        check(self.cache >= 0, f"--cache must be a number of positions >= 0, not {self.cache}")
        check(self.cache_theta is None or self.cache_theta >= 0, f"--cache-theta must be >= 0, not {self.cache_theta}")
        check(
            self.cache_lambda is None or 0 <= self.cache_lambda < 1,
            f"--cache-lambda must be in [0, 1), not {self.cache_lambda}",
        )
        check(self.dyn_lr is None or self.dyn_lr >= 0, f"--dyn-lr must be >= 0, not {self.dyn_lr}")
        check(
            self.dyn_decay is None or 0 <= self.dyn_decay <= 1, f"--dyn-decay must be in [0, 1], not {self.dyn_decay}"
        )
        check(self.dyn_segment >= 1, f"--dyn-segment must be at least 1 token, not {self.dyn_segment}")
        check(self.dyn_rule in DYN_RULES, f"--dyn-rule must be one of {', '.join(DYN_RULES)}, not {self.dyn_rule!r}")
        self._check_needed()

    def _check_needed(self) -> None:
        """Options that only mean something with --cache or --dynamic-eval are refused without them."""
        for name in ("cache_theta", "cache_lambda", "tune_cache"):
            check(self.cache > 0 or getattr(self, name) is None, f"{option_name(name)} applies with --cache W only")
        check(
            self.cache_theta is None or self.tune_cache is None or self.cache_lambda is None,
            "--tune-cache chooses --cache-theta and --cache-lambda; give those or --tune-cache, not all three",
        )
        defaults = {f.name: f.default for f in fields(self)}
        for name in ("dyn_lr", "dyn_decay", "dyn_segment", "dyn_stats", "dyn_rule", "dyn_carry"):
            check(
                self.dynamic_eval or getattr(self, name) == defaults[name],
                f"{option_name(name)} applies with --dynamic-eval only",
            )
        check(
            not self.dynamic_eval or self.dyn_rule != "rms" or self.dyn_stats is not None,
            "--dyn-rule rms needs --dyn-stats TRAIN_FILE, the model's training text, for its gradient statistics "
            "(or use --dyn-rule sgd, which needs none)",
        )

    @property
    def active(self) -> bool:
        return self.cache > 0 or self.dynamic_eval

    @property
    def theta(self) -> float:
        return CACHE_THETA if self.cache_theta is None else self.cache_theta

    @property
    def lam(self) -> float:
        return CACHE_LAMBDA if self.cache_lambda is None else self.cache_lambda

    @property
    def lr(self) -> float:
        return DYN_DEFAULTS[self.dyn_rule][0] if self.dyn_lr is None else self.dyn_lr

    @property
    def decay(self) -> float:
        return DYN_DEFAULTS[self.dyn_rule][1] if self.dyn_decay is None else self.dyn_decay

    def describe(self) -> str:
        """The settings in words, for a perplexity's description and a signature (`cache:500,0.3,0.1`)."""
        parts = []
        if self.cache:
            parts.append(f"cache:{self.cache},theta={self.theta:g},lambda={self.lam:g}")
        if self.dynamic_eval:
            stats = "" if self.dyn_rule == "sgd" else ",stats=train"
            carry = ",carry" if self.dyn_carry else ""
            parts.append(
                f"dynamic:{self.dyn_rule},lr={self.lr:g},decay={self.decay:g},segment={self.dyn_segment}{stats}{carry}"
            )
        return "|".join(parts)


NAMES = tuple(f.name for f in fields(Adaptation))


def adaptation_settings(**options) -> Adaptation:
    """The Adaptation of keyword options named as the commands' (`cache=500, dynamic_eval=True`); an unknown
    name is a ConfigError that lists the known ones."""
    unknown = sorted(set(options) - set(NAMES))
    if unknown:
        raise ConfigError(
            f"no adaptation option {', '.join(map(repr, unknown))}; the options are {', '.join(NAMES)} "
            "(those of `nlm score --help`, spelled with underscores)"
        )
    return Adaptation(**options)

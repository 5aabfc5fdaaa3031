"""The options `nlm score` and `nlm perplexity` share to adapt a model to the text it scores, declared once.

The continuous cache pointer (`--cache W`, Grave et al. 2017) and dynamic evaluation (`--dynamic-eval`,
Krause et al. 2018); their names and defaults are those of nlm/lm/adapt_config.py, where they are
checked.  `with_adaptation` adds them to a command, which receives them as one dict, `adaptation`,
named as `nlm.LanguageModel.score` and `.perplexity` take them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal

import typer

from nlm.cli.console import err_console
from nlm.lm.adapt_config import CACHE_LAMBDA, CACHE_THETA, DYN_DEFAULTS, DYN_RULES, DYN_SEGMENT

ADAPT = "Adaptation: cache pointer and dynamic evaluation"
DynRule = Literal[DYN_RULES]

CacheWindow = Annotated[
    int,
    typer.Option(
        "--cache",
        metavar="W",
        min=0,
        help="Mix in the continuous cache pointer over the last W positions (Grave et al. 2017): the words that "
        "followed states like the current one; 0: off.  Within each line for score and --protocol sentence.",
        rich_help_panel=ADAPT,
    ),
]
CacheTheta = Annotated[
    float | None,
    typer.Option(
        help=f"The pointer's sharpness: position i weighs exp(theta * h_t . h_i) [default: {CACHE_THETA}].",
        show_default=False,
        rich_help_panel=ADAPT,
    ),
]
CacheLambda = Annotated[
    float | None,
    typer.Option(
        help=f"The cache's share: p = (1 - lambda) p_model + lambda p_cache [default: {CACHE_LAMBDA}].",
        show_default=False,
        rich_help_panel=ADAPT,
    ),
]
TuneCache = Annotated[
    str | None,
    typer.Option(
        metavar="VALID_FILE",
        help="First choose --cache-theta and --cache-lambda (those not given) on this validation text, a small grid "
        "scored the way the input will be; the choice is printed on stderr.",
        show_default=False,
        rich_help_panel=ADAPT,
    ),
]
DynamicEval = Annotated[
    bool,
    typer.Option(
        "--dynamic-eval",
        help="Dynamic evaluation (Krause et al. 2018): after scoring each segment, one gradient step on it, pulled "
        "back towards the trained weights; the checkpoint is never changed.",
        rich_help_panel=ADAPT,
    ),
]
DynLr = Annotated[
    float | None,
    typer.Option(
        help="Dynamic evaluation's step size "
        f"[default: rms {DYN_DEFAULTS['rms'][0]:g}, sgd {DYN_DEFAULTS['sgd'][0]:g}].",
        show_default=False,
        rich_help_panel=ADAPT,
    ),
]
DynDecay = Annotated[
    float | None,
    typer.Option(
        help="The pull back towards the trained weights at each step, in [0, 1] "
        f"[default: rms {DYN_DEFAULTS['rms'][1]:g}, sgd {DYN_DEFAULTS['sgd'][1]:g}].",
        show_default=False,
        rich_help_panel=ADAPT,
    ),
]
DynSegment = Annotated[int, typer.Option(min=1, help="Tokens scored between two updates.", rich_help_panel=ADAPT)]
DynStats = Annotated[
    str | None,
    typer.Option(
        metavar="TRAIN_FILE",
        help="The model's training text, for the rms rule's gradient statistics (computed once, then kept in the "
        "cache folder, $NLM_CACHE_DIR or ~/.cache/nlm).",
        show_default=False,
        rich_help_panel=ADAPT,
    ),
]
DynRuleOption = Annotated[
    DynRule,
    typer.Option(
        help="rms: each step divided by the weight's RMS gradient in training (Krause et al.; needs --dyn-stats); "
        "sgd: plain steps.",
        rich_help_panel=ADAPT,
    ),
]
DynCarry = Annotated[
    bool,
    typer.Option(
        "--dyn-carry",
        help="score: the lines are one document in order, so what is learnt carries from line to line (by default "
        "each line is its own document).",
        rich_help_panel=ADAPT,
    ),
]


OPTIONS: dict[str, tuple[Any, Any]] = {  # name: (annotation, default), in the order --help lists them
    "cache": (CacheWindow, 0),
    "cache_theta": (CacheTheta, None),
    "cache_lambda": (CacheLambda, None),
    "tune_cache": (TuneCache, None),
    "dynamic_eval": (DynamicEval, False),
    "dyn_lr": (DynLr, None),
    "dyn_decay": (DynDecay, None),
    "dyn_segment": (DynSegment, DYN_SEGMENT),
    "dyn_stats": (DynStats, None),
    "dyn_rule": (DynRuleOption, "rms"),
    "dyn_carry": (DynCarry, False),
}


def with_adaptation(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with the adaptation options after its own; it receives them by name in one dict, `adaptation`."""
    signature = inspect.signature(command, eval_str=True)  # the annotations themselves, as Typer reads them
    own = [parameter for parameter in signature.parameters.values() if parameter.name != "adaptation"]
    added = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
        for name, (annotation, default) in OPTIONS.items()
    ]

    @functools.wraps(command)
    def adapted_command(**options: Any) -> Any:
        adaptation = {name: options.pop(name) for name in OPTIONS}
        return command(**options, adaptation=adaptation)

    adapted_command.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    annotations = {k: v for k, v in command.__annotations__.items() if k != "adaptation"}
    adapted_command.__annotations__ = {**annotations, **{name: a for name, (a, _) in OPTIONS.items()}}
    return adapted_command


def tuned(lm, adaptation: dict[str, Any], share, **scoring: Any) -> dict[str, Any]:
    """The adaptation options with `--tune-cache` carried out (its choice said on stderr by the lead process),
    for a command scoring its `share` of the input (nlm.api.shares)."""
    from nlm.errors import ConfigError

    if adaptation.get("dyn_carry") and share.ranks.world > 1:
        raise ConfigError(
            "--dyn-carry reads the lines as one document in order, which processes cannot share; "
            "run it in one process (without torchrun)"
        )
    if adaptation.get("tune_cache") is None:
        return adaptation
    options = {name: value for name, value in adaptation.items() if name != "tune_cache"}
    tuning = lm.tune_cache(adaptation["tune_cache"], **scoring, **options)
    if share.lead:
        err_console.print(tuning.describe(), markup=False, highlight=False)
    return {**options, "cache_theta": tuning.theta, "cache_lambda": tuning.lam}

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


def _option(kind: Any, default: Any, help: str, *decls: str, **options: Any) -> tuple[Any, Any]:
    """(annotation, default) of one adaptation option, listed in --help's adaptation panel."""
    option = typer.Option(*decls, help=help, rich_help_panel=ADAPT, show_default=default is not None, **options)
    return Annotated[kind, option], default


RMS, SGD = DYN_DEFAULTS["rms"], DYN_DEFAULTS["sgd"]
OPTIONS: dict[str, tuple[Any, Any]] = {  # name: (annotation, default), in the order --help lists them
    "cache": _option(
        int,
        0,
        "Mix in the continuous cache pointer over the last W positions (Grave et al. 2017): the words that "
        "followed states like the current one; 0: off.  Within each line for score and --protocol sentence.",
        "--cache",
        metavar="W",
        min=0,
    ),
    "cache_theta": _option(
        float | None,
        None,
        f"The pointer's sharpness: position i weighs exp(theta * h_t . h_i) [default: {CACHE_THETA}].",
    ),
    "cache_lambda": _option(
        float | None, None, f"The cache's share: p = (1 - lambda) p_model + lambda p_cache [default: {CACHE_LAMBDA}]."
    ),
    "tune_cache": _option(
        str | None,
        None,
        "First choose --cache-theta and --cache-lambda (those not given) on this validation text, a small grid "
        "scored the way the input will be; the choice is printed on stderr.",
        metavar="VALID_FILE",
    ),
    "dynamic_eval": _option(
        bool,
        False,
        "Dynamic evaluation (Krause et al. 2018): after scoring each segment, one gradient step on it, pulled "
        "back towards the trained weights; the checkpoint is never changed.",
        "--dynamic-eval",
    ),
    "dyn_lr": _option(float | None, None, f"Dynamic evaluation's step size [default: rms {RMS[0]:g}, sgd {SGD[0]:g}]."),
    "dyn_decay": _option(
        float | None,
        None,
        f"The pull back towards the trained weights at each step, in [0, 1] [default: rms {RMS[1]:g}, sgd {SGD[1]:g}].",
    ),
    "dyn_segment": _option(int, DYN_SEGMENT, "Tokens scored between two updates.", min=1),
    "dyn_stats": _option(
        str | None,
        None,
        "The model's training text, for the rms rule's gradient statistics (computed once, then kept in the "
        "cache folder, $NLM_CACHE_DIR or ~/.cache/nlm).",
        metavar="TRAIN_FILE",
    ),
    "dyn_rule": _option(
        DynRule,
        "rms",
        "rms: each step divided by the weight's RMS gradient in training (Krause et al.; needs --dyn-stats); "
        "sgd: plain steps.",
    ),
    "dyn_carry": _option(
        bool,
        False,
        "score: the lines are one document in order, so what is learnt carries from line to line (by default "
        "each line is its own document).",
        "--dyn-carry",
    ),
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

"""`nlm train`'s options as the typed configs the library trains with, for the command and `nlm.train` alike.

Each option has the name of its command-line flag (`--max-time` is `max_time`) and belongs to one
config: the vocabulary to build (VocabConfig), how the text is read (LMDataConfig), the model
(RNNConfig) or the training (TrainConfig).  The builders turn the options' values, as a command line
gives them, into those configs; an option left out takes the config's default, except where the
command line's default is written differently (`emb`: the hidden size; `save_every`: `500` steps or
`10m`; `cutoffs` and `milestones`: `2000,10000`).  Imports stay inside the functions: the command
line reads this module before it knows it will train.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from nlm.errors import ConfigError

# Settings of the configs that are not options of `nlm train` (set by the library, or recorded by it).
NOT_OPTIONS = {"vocab_size", "eval_batch_size", "save_every_seconds", "log_every", "recipe"}


def option_names() -> dict[str, tuple[str, ...]]:
    """The options of `nlm train` that build each config, by config: vocab_config, data, model, training."""
    from nlm.lm.config import LMDataConfig
    from nlm.models.rnn import RNNConfig
    from nlm.text.build import VocabConfig
    from nlm.train.config import TrainConfig

    def names(config: type) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(config) if f.name not in NOT_OPTIONS)

    vocab = tuple("vocab_size" if name == "size" else name for name in names(VocabConfig))
    return {
        "vocab_config": vocab,
        "data": names(LMDataConfig),
        "model": names(RNNConfig),
        "training": (*names(TrainConfig), "bf16"),  # bf16=True: precision="bf16", as `--bf16` was spelled before
    }


def vocab_config(**values: Any):
    from nlm.text.build import VocabConfig

    return VocabConfig(size=values.pop("vocab_size", None), **values)


def data_config(**values: Any):
    from nlm.lm.config import LMDataConfig

    return LMDataConfig(**values)


def rnn_config(**values: Any):
    from nlm.models.heads import parse_cutoffs
    from nlm.models.rnn import RNNConfig

    hidden = values.get("hidden", RNNConfig.hidden)
    values["emb"] = values.get("emb") or hidden  # the embedding is as wide as the hidden state unless given
    if isinstance(values.get("cutoffs"), str | None):
        values["cutoffs"] = parse_cutoffs(values.get("cutoffs"))
    return RNNConfig(**values)


def train_config(**values: Any):
    from nlm.train.config import TrainConfig

    if values.pop("bf16", False):
        values["precision"] = "bf16"
    if isinstance(values.get("save_every"), str | None):
        values["save_every"], values["save_every_seconds"] = parse_every(values.get("save_every"))
    if isinstance(values.get("milestones"), str | None):
        values["milestones"] = sizes(values.get("milestones"), "--milestones") or ()
    return TrainConfig(**values)


BUILDERS = {"vocab_config": vocab_config, "data": data_config, "model": rnn_config, "training": train_config}


def train_configs(options: dict[str, Any]) -> dict[str, Any]:
    """The four configs from `nlm train` options given by name; an unknown name is a ConfigError."""
    groups = option_names()
    unknown = sorted(set(options) - {name for names in groups.values() for name in names})
    if unknown:
        raise ConfigError(
            f"nlm.train has no option {', '.join(map(repr, unknown))}; it takes the options of `nlm train` "
            "(see `nlm train --help`), spelled with underscores: max_time=60, vocab_size=8000"
        )
    return {group: BUILDERS[group](**{n: options[n] for n in names if n in options}) for group, names in groups.items()}


def parse_every(text: str | None) -> tuple[int | None, float | None]:
    """`--save-every`: `500` optimizer steps, or a duration `90s`, `10m`, `2h` -> (steps, seconds)."""
    if text is None:
        return None, None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or (not match.group(2) and "." in match.group(1)):
        raise ConfigError(f"--save-every takes a number of steps (500) or a duration (90s, 10m, 2h), not {text!r}")
    number, unit = match.groups()
    if not unit:
        return int(number), None
    return None, float(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def sizes(text: str | None, option: str = "--hidden") -> tuple[int, ...] | None:
    """`"120,84"` -> (120, 84); None stays None."""
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} takes sizes separated by commas, e.g. 120,84, not {text!r}") from None


def typed_changes(given: dict[str, Any], configs: tuple) -> dict[str, Any]:
    """What a resumed run is given, as typed values: each option's value in the configs built from the same
    options (a TrainConfig first; `save_every` as steps or seconds), an option no config holds as given."""
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if name == "save_every":
            training = next(c for c in configs if hasattr(c, "save_every_seconds"))
            changes.update(save_every=training.save_every, save_every_seconds=training.save_every_seconds)
        else:
            changes[name] = next((getattr(c, name) for c in configs if hasattr(c, name)), value)
    return changes


def recipe_options(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Recipe `name`'s options with the `given` ones instead, a tied recipe's last layer following a given size."""
    from nlm.lm.recipes import RECIPES, last_layer_follows_embedding

    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r} is not a recipe; choose one of {', '.join(RECIPES)} (or list)")
    options = {**RECIPES[name].options, **given}
    last_layer_follows_embedding(options, set(given))
    return options

"""`--recipe NAME`: a published configuration's value for every option of `nlm train` not given on the command line.

`with_recipe` goes outermost on the command, above the option groups: it swaps in the recipe's
values before the groups build their configs from them, so a recipe reaches the configs exactly as
typed options would, and whatever the user typed (source COMMANDLINE or ENVIRONMENT) wins.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from nlm.cli.console import err_console
from nlm.cli.option_groups import given_options
from nlm.cli.options import RUN
from nlm.config import option_name

RecipeName = Annotated[
    str | None,
    typer.Option(
        "--recipe",
        help="Start from a published configuration (every option not given takes "
        "its value); `--recipe list` shows them with their figures.",
        rich_help_panel=RUN,
    ),
]


def list_recipes() -> str:
    """The recipes as a table for people: name, published figure, source, data."""
    from nlm.lm.recipes import RECIPES

    rows = []
    for recipe in RECIPES.values():
        rows += [
            recipe.name,
            f"  {recipe.summary}",
            f"  published: {recipe.figure}",
            f"  source: {recipe.source}",
            f"  data: {recipe.data} ({', '.join(recipe.files)})",
        ]
    return "\n".join(rows)


def apply_recipe(ctx: typer.Context, name: str, values: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Put recipe `name`'s values into `values` where the option was not given; (filled, kept) as flags."""
    from nlm.api.options import recipe_options

    given, filled, kept = given_options(ctx), [], []
    options = recipe_options(name, {option: values[option] for option in given if option in values})
    for option, value in options.items():
        if option in given:
            kept.append(option_name(option))
            continue
        values[option] = value
        if value is not None:
            filled.append(as_typed(option, value))
    return filled, kept


def as_typed(option: str, value: Any) -> str:
    """An option and its value as a user would type them: `--tie`, `--no-tie`, `--lr 30.0`."""
    if isinstance(value, bool):
        return option_name(option) if value else "--no-" + option_name(option).removeprefix("--")
    return f"{option_name(option)} {value}"


def with_recipe(command: Callable) -> Callable:
    """Decorate a command that declares `ctx: typer.Context`, `recipe: RecipeName` and `resume` with --recipe."""

    @functools.wraps(command)
    def wrapper(**values: Any) -> Any:
        name = values["recipe"]
        if name == "list":
            typer.echo(list_recipes())
            return None
        if name is not None:
            if values.get("resume") is not None:
                from nlm.errors import ConfigError

                raise ConfigError(
                    "--recipe starts a new run from a preset; a resumed run keeps the configuration it has"
                )
            filled, kept = apply_recipe(values["ctx"], name, values)
            if not values.get("quiet"):
                err_console.print(
                    f"recipe {name}: {' '.join(filled)}" + (f"; given: {' '.join(kept)}" if kept else ""),
                    highlight=False,
                    soft_wrap=True,
                )
        return command(**values)

    del wrapper.__wrapped__  # Typer reads the signature below: the groups' options, which this one fills
    wrapper.__signature__ = inspect.signature(command)
    return wrapper

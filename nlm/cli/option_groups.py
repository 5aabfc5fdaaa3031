"""Option groups: options declared once and handed to a command as one typed config.

A command that declares `training: TrainConfig` and is decorated with `@TRAINING` (or
`@TRAINING.with_defaults(...)`) gets every training option on its command line and receives
their values as one TrainConfig; `nlm train` stacks several groups (vocabulary, data, model).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer


def option_spec(annotation, default, help: str, panel: str, *decls: str, **checks: Any) -> tuple:
    """One member of an OptionGroup: (type, default, the typer.Option); `checks` such as min=0 go to the Option."""
    return annotation, default, typer.Option(*decls, help=help, rich_help_panel=panel, **checks)


@dataclass(frozen=True)
class OptionGroup:
    """Options declared once and handed to a command as one typed value.

    Decorating a command whose signature has `<name>: SomeConfig` replaces that parameter with
    the group's options and calls the command with `<name>=build(**their values)`."""

    name: str
    build: Callable[..., Any]
    options: dict[str, tuple]
    helps: dict[str, str] = field(default_factory=dict)

    def with_defaults(self, *, helps: dict[str, str] | None = None, **defaults: Any) -> OptionGroup:
        options = {k: (a, defaults.get(k, d), o) for k, (a, d, o) in self.options.items()}
        return OptionGroup(self.name, self.build, options, {**self.helps, **(helps or {})})

    def without(self, *names: str) -> OptionGroup:
        """The group less some options: the command does not offer them, and `build` gets their defaults."""
        options = {k: v for k, v in self.options.items() if k not in names}
        return OptionGroup(self.name, self.build, options, self.helps)

    def _parameters(self) -> list[inspect.Parameter]:
        parameters = []
        for name, (annotation, default, option) in self.options.items():
            if name in self.helps:
                option = copy.copy(option)
                option.help = self.helps[name]
            parameters.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
                )
            )
        return parameters

    def __call__(self, command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values() if p.name != self.name
        ]
        parameters = own + self._parameters()

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            grouped = {name: values.pop(name) for name in self.options}
            return command(**values, **{self.name: self.build(**grouped)})

        del wrapper.__wrapped__  # Typer reads the signature below, not the command's
        wrapper.__signature__ = signature.replace(parameters=parameters)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper


def given_options(ctx: typer.Context) -> set[str]:
    """The parameters set on the command line (or through their environment variable), not by default."""
    sources = {"COMMANDLINE", "ENVIRONMENT"}
    return {
        name for name in ctx.params if (source := ctx.get_parameter_source(name)) is not None and source.name in sources
    }

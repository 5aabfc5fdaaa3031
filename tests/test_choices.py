"""Each choice is declared once, in a torch-free library tuple: every choice list on the command line is one of
them (so adding a cell or an optimizer is one change), and every registry behind them is keyed by exactly it."""

from __future__ import annotations

import ast
import inspect
import types
import typing

import pytest
from conftest import REPO

from nlm.cli import app
from nlm.config import DEVICES, EXPORT_PRECISIONS, PRECISIONS
from nlm.io.curves import X_AXES, Y_METRICS
from nlm.io.tables import FORMATS
from nlm.lm.adapt_config import DYN_RULES
from nlm.lm.config import LOG_BASES, MODES
from nlm.models import choices
from nlm.text.symbols import LEVELS
from nlm.train.config import ANNEALS, OPTIMIZERS, SCHEDULES

LIBRARY_CHOICES = {
    LEVELS,
    MODES,
    tuple(LOG_BASES),
    OPTIMIZERS,
    SCHEDULES,
    ANNEALS,
    DYN_RULES,
    DEVICES,
    PRECISIONS,
    EXPORT_PRECISIONS,
    tuple(X_AXES),
    tuple(Y_METRICS),
    *(value for name, value in vars(choices).items() if name.isupper()),
}


def commands(typer_app, path=()):
    for command in typer_app.registered_commands:
        yield " ".join((*path, command.name or command.callback.__name__)), command.callback
    for group in typer_app.registered_groups:
        yield from commands(group.typer_instance, (*path, group.name))


def choice_lists():
    """(command, parameter, the names it takes) for every option that takes one of a list of names."""
    for name, callback in commands(app):
        for parameter in inspect.signature(callback, eval_str=True).parameters.values():
            annotation, option = parameter.annotation, None
            if typing.get_origin(annotation) is typing.Annotated:
                annotation, option = typing.get_args(annotation)[0], typing.get_args(annotation)[1]
            if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None
                annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
            if typing.get_origin(annotation) is typing.Literal:
                yield name, parameter.name, typing.get_args(annotation)
            elif option is not None and getattr(option, "parser", None) and "|" in (option.metavar or ""):
                yield name, parameter.name, tuple(option.metavar.split("|"))


CHOICES = sorted(choice_lists())


def test_every_command_line_choice_is_a_library_tuple():
    assert len(CHOICES) > 20  # the walk found the commands' choices
    for command, parameter, names in CHOICES:
        if parameter == "output_format":
            assert set(names) <= set(FORMATS), (command, names)
        else:
            assert names in LIBRARY_CHOICES, (command, parameter, names)


def test_the_cli_declares_no_enum_of_its_own():
    enums = [
        f"{path.name}:{node.name}"
        for path in (REPO / "nlm" / "cli").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and any(getattr(base, "id", "") == "Enum" for base in node.bases)
    ]
    assert enums == []


@pytest.mark.parametrize(
    "registry, names",
    [
        ("nlm.models.rnn:CELL_MODULES", choices.CELLS),
        ("nlm.models.heads:HEADS", choices.SOFTMAXES),
        ("nlm.models.classifiers:CLASSIFIERS", choices.ARCHITECTURES),
        ("nlm.models.classifiers:POOL_LAYERS", choices.POOLS),
        ("nlm.models.autoencoder:ACTIVATION_LAYERS", choices.ACTIVATIONS),
        ("nlm.models.autoencoder:CORRUPTERS", choices.CORRUPTIONS),
        ("nlm.train.optim:OPTIMIZER_BUILDERS", OPTIMIZERS),
        ("nlm.io.tables:ROW_FORMATS", tuple(f for f in FORMATS if f != "text")),
    ],
)
def test_each_registry_is_keyed_by_its_names(registry, names):
    module, attribute = registry.split(":")
    assert set(getattr(__import__(module, fromlist=[attribute]), attribute)) == set(names)

"""Frozen configuration dataclasses shared by the library, stored in every checkpoint.

Each config is a frozen dataclass that inherits `Config`, which gives it `to_dict`
(plain JSON-able values) and `from_dict` (unknown keys are an error, lists become
tuples where the field is a tuple), plus a `validate` hook that raises ConfigError.
Before any `validate`, every float setting must be a finite number: `inf` and `nan`
pass most range checks (`nan` fails every comparison, `inf` passes `> 0`), so they are
refused here, once, for every config, naming the option (`--init-range`).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Self

from nlm.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the hardware does it natively (nlm.runtime.bf16_is_fast)
EXPORT_PRECISIONS = ("fp32", "bf16", "int8")  # `nlm export`: the weights; int8: recurrent layers on ONNX Runtime


class Config:
    """Mixin for frozen dataclass configs."""

    def __post_init__(self) -> None:
        self.check_finite()
        self.validate()

    def check_finite(self) -> None:
        """Raise ConfigError for a float field (or a float inside a tuple field) that is inf or nan."""
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ConfigError(f"{option_name(field.name)} must be a finite number, not {value}")

    def validate(self) -> None:
        """Raise ConfigError for values that make no sense; subclasses extend this."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - set(fields)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown settings {sorted(unknown)}")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in data.items():
            origin = typing.get_origin(hints.get(name))
            values[name] = tuple(value) if origin is tuple and isinstance(value, list) else value
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def describe(self) -> str:
        """Every setting as `key=value` text, for the header a command prints (`cell=lstm layers=2 cutoffs=none`)."""
        return settings_text(self.to_dict())


def settings_text(values: dict[str, Any]) -> str:
    """`key=value` pairs separated by spaces: numbers as `%g`, sequences joined by commas, None and () as `none`."""

    def text(value: Any) -> str:
        if value is None or value == () or value == []:
            return "none"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, list | tuple):
            return ",".join(text(v) for v in value)
        return str(value)

    return " ".join(f"{key}={text(value)}" for key, value in values.items())


def option_name(field: str) -> str:
    """The command-line option of a config field: `init_range` -> `--init-range`."""
    return "--" + field.replace("_", "-")


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds."""
    if not condition:
        raise ConfigError(message)

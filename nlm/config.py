"""Frozen configuration dataclasses shared by the library, stored in every checkpoint.

Each config is a frozen dataclass that inherits `Config`, which gives it `to_dict`
(plain JSON-able values) and `from_dict` (unknown keys are an error, lists become
tuples where the field is a tuple), plus a `validate` hook that raises ConfigError.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Self

from nlm.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N


class Config:
    """Mixin for frozen dataclass configs."""

    def __post_init__(self) -> None:
        self.validate()

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


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds."""
    if not condition:
        raise ConfigError(message)

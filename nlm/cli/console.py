"""The stderr console: messages and progress for people, never data."""

from __future__ import annotations

from rich.console import Console

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

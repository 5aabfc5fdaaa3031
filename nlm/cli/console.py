"""The stderr console: messages and progress for people, never data."""

from __future__ import annotations

from rich.console import Console

# Markup off: messages carry file names and user text; the few styled lines ask for markup=True.
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

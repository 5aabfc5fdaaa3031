"""`nlm --help` and each group's help: every command's one-line summary is whole, not cut mid-phrase."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nlm.cli import app

GROUPS = ["vocab", "vision", "autoencoder", "corpus", "diagnose"]


@pytest.mark.parametrize("group", ["", *GROUPS])
def test_every_summary_fits_an_80_column_terminal_whole(group):
    result = CliRunner().invoke(app, [*group.split(), "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    commands = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert len(commands) >= 2 and all(line.rstrip().endswith(".") for line in commands), commands
    assert all(not line.rstrip().endswith("...") for line in commands), commands

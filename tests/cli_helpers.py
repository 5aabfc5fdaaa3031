"""Running the real `nlm` app in-process, and the one-line error contract every command keeps."""

from __future__ import annotations

from PIL import Image
from typer.testing import CliRunner

from nlm.cli import app


def nlm(*args, input: str | bytes | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def one_line_error(result, code: int, words: str) -> None:
    """The exit code, one line on stderr that says what is wrong, no traceback, nothing on stdout."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.stderr.startswith("nlm: error:") and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr and result.stdout == ""


def png_size(path) -> tuple[int, int]:
    """Decode the PNG fully (a truncated file fails here) and return its (width, height)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size

"""The `nlm` command: one Typer app, its command groups, and the one error handler.

Every command is a thin function over a library call; library code raises NLMError
subclasses, and `NLMGroup.invoke` turns them, like a bad option, Ctrl-C or a full disk
under stdout, into one line on stderr and an exit code.  Torch is imported inside
commands, so `nlm --help` stays instant.
"""

from __future__ import annotations

import atexit
import errno
import gc
import os
import signal
import sys
from typing import Annotated

import typer
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from nlm import __version__
from nlm.cli.console import err_console
from nlm.errors import Interrupted, NLMError, WriteFailedError

WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EDQUOT}


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"nlm: {message}")
    return typer.Exit(code)


def _silence_stdout() -> None:
    """After stdout failed, send what is still buffered nowhere, so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class NLMGroup(TyperGroup):
    """The top-level group: every failure a user can meet becomes one line on stderr and an exit code."""

    def invoke(self, ctx: typer.Context):
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # data still buffered must reach its file now, where a failure can be reported
            return result
        except Interrupted as e:
            raise _fail(str(e), e.exit_code) from None
        except NLMError as e:
            raise _fail(f"error: {e}", e.exit_code) from None
        except UsageError as e:
            command = e.ctx.command_path if e.ctx else "nlm"
            raise _fail(f"error: {e.format_message()} (see `{command} --help`)", e.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 128 + signal.SIGINT) from None
        except RuntimeError as e:  # torch's allocators: one line, like every other failure a user can act on
            if "torch" not in sys.modules:  # only torch raises them, and a command that did not load it raised this
                raise
            from nlm.runtime import is_out_of_memory, out_of_memory

            if not is_out_of_memory(e):
                raise
            error = out_of_memory(e)
            raise _fail(
                f"error: {error}; try a smaller batch (--batch-size, --num) or model", error.exit_code
            ) from None
        except OSError as e:
            if e.errno not in WRITE_ERRORS:
                raise
            _silence_stdout()
            raise _fail(f"error: cannot write the output: {e.strerror}", WriteFailedError.exit_code) from None


app = typer.Typer(
    cls=NLMGroup,
    name="nlm",
    help="Neural language modeling from the command line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nlm {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads for torch [default: torch's choice, one per core]; 1 is often fastest on a busy machine.",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print nlm's version and exit.")
    ] = False,
) -> None:
    """Neural language modeling from the command line."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _register() -> None:
    from nlm.cli import (
        autoencoder,
        bleu,
        corpus,
        diagnose,
        export,
        generate,
        lm,
        neighbours,
        next_tokens,
        plot,
        score,
        vision,
        vocab,
    )

    app.add_typer(vocab.app, name="vocab")
    for module in (
        lm,
        score,
        next_tokens,
        generate,
        export,
        bleu,
        vision,
        autoencoder,
        corpus,
        diagnose,
        neighbours,
        plot,
    ):
        module.register(app)


_register()


def main() -> None:
    # A closed pipe (`nlm score ... | head`) ends the process quietly, like a Unix tool.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # At exit Python runs the collector over every object still alive: with torch loaded, a million of them
    # and a quarter of a second, to free memory the process is about to give back.  Frozen, they are skipped.
    atexit.register(gc.freeze)
    app()
    sys.exit(0)

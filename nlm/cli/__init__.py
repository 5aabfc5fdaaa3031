"""The `nlm` command: one Typer app, its command groups, and the one error handler.

Every command is a thin function over a library call; library code raises NLMError
subclasses, and `NLMGroup.invoke` turns them into one red line on stderr and the
error's exit code.  Ctrl-C exits with 130.  Torch is imported inside commands so
that `nlm --help` stays instant.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

from nlm.cli.console import err_console
from nlm.errors import Interrupted, NLMError


class NLMGroup(TyperGroup):
    """The top-level group: maps NLMError and Ctrl-C to a message and an exit code."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except Interrupted as e:
            err_console.print(f"[bold yellow]nlm:[/] {escape(str(e))}", highlight=False, markup=True)
            ctx.exit(e.exit_code)
        except NLMError as e:
            err_console.print(f"[bold red]nlm: error:[/] {escape(str(e))}", highlight=False, markup=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            err_console.print("[bold red]nlm: interrupted[/]", highlight=False)
            ctx.exit(130)


app = typer.Typer(
    cls=NLMGroup,
    name="nlm",
    help="Neural language modeling from the command line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _global_options(
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads for torch [default: torch's choice]; 1 is often fastest on a busy machine.")] = None,
) -> None:
    """Neural language modeling from the command line."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _register() -> None:
    from nlm.cli import autoencoder, bleu, corpus, diagnose, lm, neighbours, plot, score, vision, vocab

    app.add_typer(vocab.app, name="vocab")
    for module in (lm, score, bleu, vision, autoencoder, corpus, diagnose, neighbours, plot):
        module.register(app)


_register()


def main() -> None:
    # A closed pipe (`nlm score ... | head`) ends the process quietly, like a Unix tool.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()
    sys.exit(0)

"""Scoring one input in many processes: torchrun starts them, each scores its contiguous share of the lines.

    torchrun --nproc-per-node N -m nlm score -m RUN FILE -o OUT          (--nnodes M: N x M processes)

    lines     0 ............................................ L
    rank      [ 0 ........ )[ 1 ........ ) ... [ N-1 ...... )      contiguous shares, sizes differ by at most 1
    writes    .OUT.part-0   .OUT.part-1        .OUT.part-N-1       beside OUT (a filesystem every node shares)
    then      rank 0 joins the parts in rank order into OUT through the atomic writer

So OUT holds exactly the bytes one process writes.  Every rank counts the lines itself (one pass over
the bytes, decompressed if need be) and passes over the lines before its share undecoded.  The
totals (sentences, tokens, OOVs, log-probs) are summed over the ranks in the same collective that
agrees on success, so a failure anywhere ends every rank and no rank waits for one that stopped;
OUT appears only when every part is whole.  Each rank runs one torch thread unless told otherwise
(`nlm --threads`).  Without torchrun the same block is one process: all the lines, written to
stdout or through the atomic writer to OUT.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch

from nlm.errors import ConfigError, Interrupted, NLMError
from nlm.io.atomic import atomic_write, check_distinct, write_error
from nlm.io.text import STDIO, EmptyInputError, count_lines, display_name, open_output, read_lines
from nlm.train.distributed import Ranks, join_processes

if TYPE_CHECKING:
    from rich.console import Console


class OtherRankFailed(NLMError):
    """Another process of the same scoring run failed (its own message says why), so this one stops too."""


@dataclass
class ScoringShare:
    """What one process scores and where it writes: see `scoring_share`."""

    ranks: Ranks
    lines: Iterable[str]  # this process's lines, in input order
    first: int  # the index, in the whole input, of its first line
    size: int | None  # how many lines it has; None in one process, where the input is read as it comes
    stream: TextIO | None  # where its rows go; None when the share was opened without an output
    output: str | None = None  # the file (or `-`) that `publish` writes, when the share writes no rows
    result: Any = None  # set by the caller before the block ends: a dataclass whose numbers are summed over the ranks
    total: Any = None  # after the block: `result` with every int and float field summed over the ranks

    @property
    def lead(self) -> bool:
        """Whether this process prints the summary and writes what is written once (rank 0, or the only process)."""
        return self.ranks.lead

    def device(self, name: str) -> str:
        """The device `--device NAME` means for this process: under torchrun, cuda:LOCAL_RANK or the CPU."""
        return str(self.ranks.device(name))

    def scores(self, score: Callable[..., Iterator], **options: Any) -> Iterator:
        """`score(self.lines, **options)` with each result's `index` counted in the whole input."""
        if self.size == 0:  # a rank past the end of a short input: nothing to score, and no error
            return
        for result in score(self.lines, **options):
            yield dataclasses.replace(result, index=result.index + self.first) if self.first else result

    def perplexity(self, measure: Callable[..., Any], source: str, *, protocol: str, **options: Any) -> Any:
        """`measure(source, protocol=..., **options)` (`LanguageModel.perplexity`) on this process's share: the file
        itself in one process; under torchrun its lines, which only the sentence protocol can split (None for an
        empty share)."""
        if self.ranks.world == 1:
            return measure(source, protocol=protocol, **options)
        if protocol != "sentence":
            raise ConfigError(
                f"--protocol {protocol} reads the text as one stream, which processes cannot share; "
                "under torchrun use --protocol sentence (each line from a fresh state, as nlm score)"
            )
        return measure(self.lines, protocol=protocol, **options) if self.size else None

    def publish(self, text: str) -> None:
        """After the block: `text` written once, by rank 0, to the output (stdout, or a file through the atomic
        writer)."""
        if self.lead:
            with open_output(self.output or STDIO) as out:
                out.write(text)


def shares(total: int, world: int) -> list[tuple[int, int]]:
    """Each rank's [start, end) of `total` lines: contiguous, in rank order, rank 0's never empty unless all are."""
    bounds = [-(-total * rank // world) for rank in range(world + 1)]
    return list(zip(bounds, bounds[1:]))


def share_lines(paths: Sequence[str], counts: Sequence[int], start: int, end: int) -> Iterator[str]:
    """Lines [start, end) of the files one after another (`counts` lines each), reading only the files they are in."""
    offset = 0
    for path, count in zip(paths, counts):
        skip, take = max(start - offset, 0), min(end, offset + count) - max(start, offset)
        if take > 0:
            yield from (line for _, line in zip(range(take), read_lines(path, allow_empty=True, skip=skip)))
        offset += count


def _number_fields(kind: type | None) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(kind) if f.type in ("int", "float")] if kind else []


def _settle(ranks: Ranks, error: BaseException | None, numbers: list[float]) -> list[float]:
    """The one all-reduce that ends a block on every rank: how many failed, and `numbers` summed.

    A failure on every rank is marked `every_rank` (rank 0 alone reports it); a failure elsewhere
    is an OtherRankFailed here; a rank that vanished (SIGKILL) is one too, never a wait."""
    try:
        sums = ranks.shard.sum([float(error is not None), *numbers])
    except RuntimeError:  # gloo or NCCL: a peer died, or the store went away
        raise OtherRankFailed(f"process {ranks.rank}: lost contact with the other processes of this run") from None
    if error is not None:
        error.every_rank = sums[0] == ranks.world
    elif sums[0]:
        failed = OtherRankFailed(
            f"process {ranks.rank}: another process of this run failed (its message says why), so this one stops too"
        )
        failed.every_rank = not ranks.lead  # rank 0 says so; the others leave it to the one that failed
        raise failed
    return sums[1:]


@contextmanager
def _settled(ranks: Ranks, numbers: Callable[[], list[float]], zeros: int) -> Iterator[list[float]]:
    """Run a block on every rank, then `_settle` it; the list yielded holds the sums once the block is done."""
    sums: list[float] = []
    try:
        yield sums
    except BaseException as error:
        _settle(ranks, error, [0.0] * zeros)
        raise
    sums.extend(_settle(ranks, None, numbers()))


def _interrupted(signum, frame) -> None:
    raise Interrupted("interrupted (SIGTERM)", exit_code=128 + signal.SIGTERM)


@contextmanager
def scoring_share(
    paths: Sequence[str],
    *,
    output: str | None = None,
    totals: type | None = None,
    threads: int | None = None,
    line_buffered: bool = False,
    rows: bool = True,
    console: Console | None = None,
) -> Iterator[ScoringShare]:
    """This process's share of the lines of `paths` (none or `-`: stdin) and the stream its rows go to.

    With `rows`, each process writes its rows to `share.stream`, which ends up in `output`: a file written
    through the atomic writer, or stdout (None or `-`) in one process; under torchrun a file is needed (a
    ConfigError without one; stdin as the input is one too).  Without `rows`, `share.publish(text)` writes
    one result to `output` (or stdout) after the block.  `totals` is the dataclass type of `share.result`,
    whose int and float fields become `share.total`, summed over the ranks, once the block ends.
    `threads` is `nlm --threads` (None: one per rank under torchrun).  Under torchrun, `console` is
    silenced on every rank but 0, except for a failure of that rank's own."""
    paths = list(paths) or [STDIO]
    with join_processes() as ranks:
        if ranks.world == 1:
            with _one_process(paths, output, line_buffered, rows) as share:
                yield share
            share.total = share.result
            return
        with ranks.quiet_followers(console) if console else nullcontext(), _terminated_cleanly():
            with _many_processes(ranks, paths, output, totals, threads, rows) as share:
                yield share


@contextmanager
def _terminated_cleanly() -> Iterator[None]:
    """SIGTERM (torchrun stopping the others when one failed) raises Interrupted, so files are cleaned up."""
    previous = _on_sigterm(_interrupted)
    try:
        yield
    finally:
        _on_sigterm(previous)


def _on_sigterm(handler):
    """Set SIGTERM's handler and return the previous one; outside the main thread, leave it (None)."""
    try:
        return signal.signal(signal.SIGTERM, handler) if handler is not None else None
    except ValueError:  # not the main thread: signals go to the main thread's handlers
        return None


@contextmanager
def _one_process(paths: list[str], output: str | None, line_buffered: bool, rows: bool) -> Iterator[ScoringShare]:
    check_distinct(output, paths)
    lines = chain.from_iterable(read_lines(path, allow_empty=True) for path in paths)
    if not rows:
        yield ScoringShare(Ranks(), lines, 0, None, None, output)
        return
    with open_output(output or STDIO, line_buffered=line_buffered) as stream:
        yield ScoringShare(Ranks(), lines, 0, None, stream)


@contextmanager
def _many_processes(ranks: Ranks, paths, output, totals, threads, rows) -> Iterator[ScoringShare]:
    fields = _number_fields(totals)
    # each rank removes its own part; rank 0 every part, so that a rank killed (SIGKILL) leaves none behind either
    parts = [part_path(Path(output), r, ranks.world) for r in range(ranks.world)] if rows and output else []
    try:
        with _settled(ranks, list, 0):
            share = _share(ranks, paths, output, threads, rows)
        with _settled(ranks, lambda: [float(getattr(share.result, f.name)) for f in fields], len(fields)) as sums:
            with share.stream or nullcontext():
                yield share
        share.total = _with_sums(share.result, fields, sums)
        with _settled(ranks, list, 0):
            if rows and ranks.lead:
                _join_parts(Path(output), ranks.world)
    finally:
        _on_sigterm(signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        for part in parts if ranks.lead else parts[ranks.rank : ranks.rank + 1]:
            part.unlink(missing_ok=True)


def _with_sums(result: Any, fields: list[dataclasses.Field], sums: list[float]) -> Any:
    if result is None or not fields:
        return result
    return dataclasses.replace(result, **{f.name: int(v) if f.type == "int" else v for f, v in zip(fields, sums)})


def _share(ranks: Ranks, paths: list[str], output: str | None, threads: int | None, rows: bool) -> ScoringShare:
    """Count the lines, find this rank's share, open its part file."""
    if STDIO in paths:
        raise ConfigError(
            f"under torchrun nlm reads files, not stdin: {ranks.world} processes cannot share one pipe; "
            "give the input as a file on a filesystem every process sees"
        )
    if output in (None, STDIO) and rows:
        raise ConfigError(f"under torchrun give -o FILE: {ranks.world} processes cannot share stdout")
    if output is not None:
        check_distinct(output, paths)
    torch.set_num_threads(threads or 1)
    counts = [count_lines(path) for path in paths]
    if not sum(counts):
        name = display_name(paths[0]) if len(paths) == 1 else "the input"
        raise EmptyInputError(name, f"{name} is empty: nothing to score")
    start, end = shares(sum(counts), ranks.world)[ranks.rank]
    stream = _open_part(part_path(Path(output), ranks.rank, ranks.world)) if rows else None
    return ScoringShare(ranks, share_lines(paths, counts, start, end), start, end - start, stream, output)


def part_path(output: Path, rank: int, world: int) -> Path:
    """Where rank `rank` writes its rows, beside the output: `.OUT.part-R-of-W`."""
    return output.with_name(f".{output.name}.part-{rank}-of-{world}")


def _open_part(path: Path) -> TextIO:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as the atomic writer does for the output itself
        return path.open("w", encoding="utf-8", newline="\n")
    except OSError as e:
        raise write_error(path, e) from None


def _join_parts(output: Path, world: int) -> None:
    """The parts, in rank order, written into `output` through the atomic writer."""
    with atomic_write(output) as out:
        for rank in range(world):
            with part_path(output, rank, world).open("rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)

"""Reading UTF-8 text line by line, with `-` for stdin and errors that name file and line.

Every text input may be compressed (gzip, bzip2, xz: nlm/io/compressed.py); it is read as its
decompressed text, a buffer at a time."""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, TextIO

from nlm.errors import DataError, InputMissingError
from nlm.io.atomic import atomic_write, write_error
from nlm.io.compressed import CorruptArchiveError, decompressed

STDIO = "-"
BOM = "\ufeff"  # a UTF-8 byte-order mark, which some editors put at the start of a file: not text


class EmptyInputError(DataError):
    """An input without a single line (exit 65); `name` is the file, or <stdin>."""

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"{name} is empty")
        self.name = name


def display_name(path: str | Path) -> str:
    return "<stdin>" if str(path) == STDIO else str(path)


def stdin_bytes() -> IO[bytes]:
    """The binary stdin, or InputMissingError (66) when the process has none (`nlm ... <&-`)."""
    stream = sys.stdin
    if stream is None or stream.closed:
        raise InputMissingError("stdin is closed; give an input file, or pipe text in")
    return getattr(stream, "buffer", stream)


def open_raw(path: str | Path) -> IO[bytes]:
    """A file, or `-` for stdin, opened to read its bytes as they are; InputMissingError for what cannot be opened."""
    if str(path) == STDIO:
        return stdin_bytes()
    p = Path(path)
    if p.is_dir():
        raise InputMissingError(f"{p} is a directory, not a text file")
    try:
        return p.open("rb")
    except FileNotFoundError:
        raise InputMissingError(f"{p}: no such file") from None
    except OSError as e:
        raise InputMissingError(f"{p}: cannot open ({e.strerror})") from None


def open_input(path: str | Path) -> IO[bytes]:
    """A file, or `-` for stdin, opened for reading its text's bytes: decompressed when it is gzip, bzip2 or xz."""
    stream = open_raw(path)
    if not hasattr(stream, "peek"):  # a stdin that is not a buffered stream (a test runner's)
        stream = io.BufferedReader(stream)
    return decompressed(stream, name=display_name(path))


def read_lines(path: str | Path, *, allow_empty: bool = False, skip: int = 0) -> Iterator[str]:
    """Yield the lines of a UTF-8 file without their line ending.

    Only `\\n` ends a line (a `\\r` before it is dropped, so a CRLF file reads as LF), so the
    lines are the ones `wc -l` counts.  A byte-order mark at the start of the input is not
    text and is dropped.  Undecodable bytes or a NUL byte (a binary file) raise DataError
    naming the file and the line; an empty file raises DataError unless allowed.  The first
    `skip` lines are passed over without being decoded.
    """
    name = display_name(path)
    stream = open_input(path)
    is_stdin = str(path) == STDIO
    number = 0
    try:
        if not is_stdin and b"\0" in stream.peek(8192)[:8192]:
            raise DataError(f"{name} holds NUL bytes; it looks like a binary file, not text")
        for number, raw in enumerate(stream, start=1):
            if number <= skip:  # another process's lines: passed over, not decoded
                continue
            if b"\0" in raw:
                raise DataError(f"{name}:{number}: NUL byte; this looks like a binary file, not text")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{name}:{number}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
                ) from None
            if number == 1:
                line = line.removeprefix(BOM)
            yield line.rstrip("\n").removesuffix("\r")
        if not number and not allow_empty:
            raise EmptyInputError(name)
    except CorruptArchiveError as e:  # where the decompression failed: the lines before it were read
        raise CorruptArchiveError(f"{name}:{number + 1}", e.kind, e.reason) from None
    finally:
        if not is_stdin:
            stream.close()


def line_batches(lines: Iterable[str], size: int = 1024) -> Iterator[list[str]]:
    """`lines` in lists of `size` (the last one shorter), for tokenizers that encode many lines per call."""
    reader = iter(lines)
    while batch := list(islice(reader, size)):
        yield batch


@dataclass(frozen=True)
class TextFiles:
    """The lines of UTF-8 files one after another, read afresh from disk at every iteration.

    Text that must be read twice (a sample, then every line) can be held this way
    instead of in memory; `-` (stdin) can be read only once.
    """

    paths: tuple[str, ...]

    @property
    def rereadable(self) -> bool:
        return STDIO not in self.paths

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            yield from read_lines(path)


@dataclass(frozen=True)
class _Spool:
    path: Path

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as f:
            for raw in f:
                yield raw[:-1].decode("utf-8")


@contextmanager
def spooled(lines: Iterable[str]) -> Iterator[Iterable[str]]:
    """`lines` (without line breaks) copied to a temporary file, replayable as often as needed while the block runs."""
    with tempfile.TemporaryDirectory(prefix="nlm-spool-") as folder:
        path = Path(folder) / "lines.txt"
        try:
            with path.open("wb", buffering=1 << 20) as f:  # scratch space, deleted with its folder: not an output
                for line in lines:
                    f.write(line.encode("utf-8") + b"\n")
        except OSError as e:  # a full /tmp
            raise write_error(path, e) from None
        yield _Spool(path)


@contextmanager
def open_output(path: str | Path, *, line_buffered: bool = False) -> Iterator[TextIO]:
    """Open a text output: `-` is stdout (flushed per line when asked); a file is written atomically."""
    if str(path) == STDIO:
        out = sys.stdout
        if line_buffered:
            out.reconfigure(line_buffering=True)
        try:
            yield out
        finally:
            out.flush()
        return
    with atomic_write(path, text=True) as f:  # a file appears whole when the command succeeds
        yield f


def count_lines(path: str | Path) -> int:
    """How many lines `read_lines(path)` yields (a last line without its newline counts), from the bytes alone."""
    lines, last = 0, b"\n"
    with open_input(path) as stream:
        while chunk := stream.read(1 << 20):
            lines, last = lines + chunk.count(b"\n"), chunk[-1:]
    return lines + (last != b"\n")


def file_sha256(path: str | Path, *, text: bool = False) -> str:
    """The sha256 of a file's bytes as hex, read through one small buffer; with `text`, of its decompressed text
    (what a compressed corpus holds).  InputMissingError naming a file that is not there."""
    import hashlib

    with open_input(path) if text else open_raw(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()

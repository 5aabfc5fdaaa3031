"""Compressed text read as it is: gzip, bzip2 and xz, known by their magic bytes, decompressed as a stream.

    1f 8b               gzip   (crawl shards, `gzip`, `pigz`)
    42 5a 68  "BZh"     bzip2
    fd 37 7a 58 5a 00   xz

The file's first bytes decide, not its name: `corpus.txt.gz` that is plain text reads as text,
and a gzip file named `corpus.txt` is decompressed.  Python's own `gzip`, `bz2` and `lzma`
modules do the work, a buffer at a time, so memory does not grow with the file; concatenated
members (`cat a.gz b.gz`, `pbzip2`) read as one text.  An archive that ends early or holds
corrupt data is a `CorruptArchiveError` (exit 65) raised where the reading reaches it, so the
lines before it have been read and used.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import IO

from nlm.errors import DataError

# name -> (magic bytes, opener of a decompressing binary stream over a raw one)
FORMATS = {
    "gzip": (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    "bzip2": (b"BZh", lambda raw: bz2.BZ2File(raw, mode="rb")),
    "xz": (b"\xfd7zXZ\x00", lambda raw: lzma.LZMAFile(raw, mode="rb")),
}
MAGIC_BYTES = max(len(magic) for magic, _ in FORMATS.values())
READ_SIZE = 1 << 20  # decompressed bytes buffered at a time
_FAILURES = (EOFError, OSError, zlib.error, lzma.LZMAError)  # what the three modules raise on bad data


class CorruptArchiveError(DataError):
    """A compressed input that ends early or holds data its format cannot decode (exit 65)."""

    def __init__(self, name: str, kind: str, reason: str) -> None:
        super().__init__(f"{name}: truncated or corrupt {kind} data ({reason})")
        self.name, self.kind, self.reason = name, kind, reason


def detect(head: bytes) -> str | None:
    """The compression of a stream that starts with `head` (gzip, bzip2 or xz), or None for anything else."""
    return next((kind for kind, (magic, _) in FORMATS.items() if head.startswith(magic)), None)


class _Checked(io.RawIOBase):
    """A decompressing stream whose failures are one CorruptArchiveError naming the input."""

    def __init__(self, inner: IO[bytes], source: IO[bytes], *, name: str, kind: str) -> None:
        super().__init__()
        self.inner, self.source, self.name, self.kind = inner, source, name, kind

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self.inner.readinto1(buffer)  # what one step decodes: never waits to fill the buffer
        except _FAILURES as e:
            reason = str(e) or type(e).__name__
            raise CorruptArchiveError(self.name, self.kind, reason[:120]) from None

    def close(self) -> None:
        if not self.closed:
            self.inner.close()  # the decompressor does not close a stream it was handed
            self.source.close()
        super().close()


def decompressed(stream: io.BufferedReader, *, name: str) -> IO[bytes]:
    """`stream` itself when it is not compressed; else a buffered stream of its decompressed bytes.

    `stream` must support `peek` (a file opened "rb", or stdin's buffer), so nothing is consumed
    to find out.  Closing the result closes `stream`."""
    kind = detect(stream.peek(MAGIC_BYTES)[:MAGIC_BYTES])
    if kind is None:
        return stream
    opener = FORMATS[kind][1]
    return io.BufferedReader(_Checked(opener(stream), stream, name=name, kind=kind), buffer_size=READ_SIZE)

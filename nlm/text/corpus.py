"""A text file as one id stream, `<eos>` after every line, encoded once into a memory-mapped cache.

The cache is keyed by the sha256 of the text (decompressed, for a compressed file) and the
vocabulary's fingerprint, so a text is encoded once per vocabulary, whether it comes plain or
gzipped; training then reads windows straight from the mapped file
and memory does not grow with the corpus.  Stdin is encoded into a private temporary
cache.  The line ends are kept too, for sentence-mode batches and per-line scoring.
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlm.errors import OutputError
from nlm.io.atomic import atomic_write, write_text_atomic
from nlm.io.text import STDIO, display_name, file_sha256, line_batches, read_lines, stdin_bytes
from nlm.text.symbols import EOS, UNK
from nlm.text.vocab import Vocabulary

CACHE_VERSION = 2  # 2: a byte-order mark at the start of a file is no longer part of its first token


@dataclass(frozen=True)
class EncodedCorpus:
    """A corpus as ids: `ids` ends every line with <eos>; `line_ends[i]` is one past line i's <eos>."""

    name: str
    ids: np.ndarray  # int32 [tokens], memory-mapped
    line_ends: np.ndarray  # int64 [lines], memory-mapped
    oovs: int  # tokens that became <unk>

    @property
    def tokens(self) -> int:
        """Tokens including one <eos> per line (the count papers quote for PTB)."""
        return len(self.ids)

    @property
    def lines(self) -> int:
        return len(self.line_ends)

    def line(self, i: int) -> np.ndarray:
        start = self.line_ends[i - 1] if i else 0
        return self.ids[start : self.line_ends[i]]


def default_cache_dir() -> Path:
    base = os.environ.get("NLM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nlm"
    )
    return Path(base)


def _write_ids(path: str | Path, vocab: Vocabulary, ids_file, ends_file) -> tuple[int, int, int]:
    """Encode into two raw files a batch of lines at a time, so memory does not grow with the corpus;
    returns (tokens, lines, oovs)."""
    total = lines = oovs = 0
    for batch in line_batches(read_lines(path)):
        ids, ends = array("i"), array("q")
        for encoded in vocab.encode_lines(batch):
            ids.fromlist(encoded)
            ids.append(EOS)
            total += len(encoded) + 1
            ends.append(total)
        oovs += int(np.count_nonzero(np.frombuffer(ids, dtype=np.int32) == UNK))
        ids.tofile(ids_file)
        ends.tofile(ends_file)
        lines += len(batch)
    return total, lines, oovs


def _open(stem: Path, name: str) -> EncodedCorpus:
    meta = json.loads(stem.with_suffix(".json").read_text())
    ids = np.memmap(stem.with_suffix(".ids"), dtype=np.int32, mode="r", shape=(meta["tokens"],))
    ends = np.memmap(stem.with_suffix(".ends"), dtype=np.int64, mode="r", shape=(meta["lines"],))
    return EncodedCorpus(name=name, ids=ids, line_ends=ends, oovs=meta["oovs"])


def _writable(folder: Path) -> Path:
    """`folder`, created if need be; OutputError (73) naming it and the way out when nlm cannot write there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OutputError(
            f"cannot write the corpus cache {folder} ({e.strerror}); "
            "point --cache-dir or NLM_CACHE_DIR at a writable folder"
        ) from None
    return folder


def encode_corpus(path: str | Path, vocab: Vocabulary, *, cache_dir: Path | None = None) -> EncodedCorpus:
    """Encode `path` (or `-`) with `vocab`, reusing the cache when the same file was seen before."""
    name = display_name(path)
    if str(path) == STDIO:
        stdin_bytes()  # a closed stdin is an error before any temporary folder is made
        stem = Path(tempfile.mkdtemp(prefix="nlm-stdin-")) / "stdin"
    else:
        stem = (
            cache_dir or default_cache_dir()
        ) / f"v{CACHE_VERSION}-{file_sha256(path, text=True)[:20]}-{vocab.fingerprint()}"
        if stem.with_suffix(".json").exists():
            return _open(stem, name)
        _writable(stem.parent)
    # ids and line ends first, the json last: its presence marks a complete entry
    with atomic_write(stem.with_suffix(".ids")) as ids_file, atomic_write(stem.with_suffix(".ends")) as ends_file:
        tokens, lines, oovs = _write_ids(path, vocab, ids_file, ends_file)
    write_text_atomic(
        stem.with_suffix(".json"), json.dumps({"tokens": tokens, "lines": lines, "oovs": oovs, "source": name})
    )
    return _open(stem, name)

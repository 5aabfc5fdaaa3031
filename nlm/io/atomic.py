"""The one way nlm writes a file: all of it, or nothing.

    temp file in the same folder -> write -> flush + fsync -> rename over the target -> fsync the folder

A crash, a full disk or a file-size limit at any point leaves the previous file (if any)
untouched and no temporary file behind (`kill -9` can leave one; the run folder's
start-up removes them).  A write that fails is one NLMError naming the file: OutputError
(73) when the file cannot be created, WriteFailedError (74) when the disk fails it.

A symbolic link is followed: the file it points to is replaced, the link stays.  A target
that is not a regular file (`/dev/null`, `/dev/full`, a FIFO) cannot be replaced by a
rename, so it is written straight through; replacing it would turn a device into a file.
`check_distinct` refuses an output that is one of the command's inputs, before any work.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nlm.errors import OutputError, OutputExistsError, WriteFailedError

TEMP_SUFFIX = ".tmp"
_CANNOT_CREATE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


def write_error(path: str | Path, error: OSError) -> OutputError:
    """The NLMError for an OSError while writing `path`."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno in _CANNOT_CREATE:
        return OutputError(f"cannot create {path}: {reason}")
    return WriteFailedError(f"cannot write {path}: {reason}")


def is_temp_file(name: str) -> bool:
    """Whether `name` is a temporary file of `atomic_write` (`.NAME.<random>.tmp`, as mkstemp names it)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _usual_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _kind(path: Path) -> int | None:
    """The file type bits of what `path` names (links followed), None when nothing is there."""
    try:
        return stat.S_IFMT(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise write_error(path, e) from None


@contextmanager
def _write_through(path: Path, text: bool) -> Iterator[IO]:
    """Write a device or FIFO in place: there is no previous content to keep."""
    try:
        with open(path, "w" if text else "wb", **({"encoding": "utf-8", "newline": "\n"} if text else {})) as f:
            yield f
    except OSError as e:
        raise write_error(path, e) from None


@contextmanager
def atomic_write(path: str | Path, *, text: bool = False) -> Iterator[IO]:
    """A file object whose contents replace `path` only when the block ends without an error."""
    shown = Path(path)
    kind = _kind(shown)
    if kind == stat.S_IFDIR:
        raise OutputError(f"{shown} is a folder; give a file name to write")
    if kind is not None and kind != stat.S_IFREG:
        with _write_through(shown, text) as f:
            yield f
        return
    path = Path(os.path.realpath(shown))  # through any symbolic link, so the link survives
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise write_error(shown, e) from None
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8", "newline": "\n"} if text else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, _usual_mode())  # mkstemp makes it private; give it the mode any new file gets
        os.replace(temp, path)
        _fsync_folder(path.parent)
    except OSError as e:
        Path(temp).unlink(missing_ok=True)
        raise write_error(shown, e) from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path, text=True) as f:
        f.write(text)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # the same inode: hard links and symbolic links included
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)  # one of them does not exist (yet)


def check_distinct(output: str | Path | None, inputs: Iterable[str | Path | None]) -> None:
    """Refuse to write `output` over one of `inputs` (OutputExistsError, exit 73).

    Call it before any work.  `-` (stdin/stdout) and None are skipped on either side, and
    so is an output that exists but is not a regular file (`/dev/null` may be any input's
    twin without harm).
    """
    if output is None or str(output) == "-" or _kind(Path(output)) not in (None, stat.S_IFREG):
        return
    for item in inputs:
        if item is None or str(item) == "-":
            continue
        if _same_file(Path(output), Path(item)):
            same = "" if str(item) == str(output) else f" (as {item})"
            raise OutputExistsError(f"{output} is also an input{same}; write the output to another file")

"""The one way nlm writes a file: all of it, or nothing.

    temp file in the same folder -> write -> flush + fsync -> rename over the target -> fsync the folder

A crash, a full disk or a file-size limit at any point leaves the previous file (if any)
untouched and no temporary file behind (`kill -9` can leave one; the run folder's
start-up removes them).  A write that fails is one NLMError naming the file: OutputError
(73) when the file cannot be created, WriteFailedError (74) when the disk fails it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nlm.errors import OutputError, WriteFailedError

TEMP_SUFFIX = ".tmp"
_CANNOT_CREATE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


def write_error(path: str | Path, error: OSError) -> OutputError:
    """The NLMError for an OSError while writing `path`."""
    reason = error.strerror or type(error).__name__
    if error.errno in _CANNOT_CREATE:
        return OutputError(f"cannot create {path}: {reason}")
    return WriteFailedError(f"cannot write {path}: {reason}")


def is_temp_file(name: str) -> bool:
    """Whether `name` is a temporary file of `atomic_write` (`.NAME.XXXX.tmp`)."""
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


@contextmanager
def atomic_write(path: str | Path, *, text: bool = False) -> Iterator[IO]:
    """A file object whose contents replace `path` only when the block ends without an error."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
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
        raise write_error(path, e) from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path, text=True) as f:
        f.write(text)

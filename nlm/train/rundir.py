"""A run folder on disk: one process at a time, a new run built beside the old one, nothing left by a failed start.

    RUN/.lock        locked (flock) by the process training in RUN for its whole life; holds its pid.
                     The kernel drops the lock when the process dies, even by kill -9: no stale locks.
    RUN/.staging/    a new run's files until its first checkpoint is written; then they replace the
                     run files already in RUN (`--force`), so a new run that fails early loses nothing.
    RUN/.replaced/   the old run's files while they are being replaced; a crash in that moment is
                     finished at the next start, in favour of the new run (it had a checkpoint).

Every start also removes the temporary files an interrupted atomic write can leave (kill -9).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from nlm.errors import InputMissingError, OutputExistsError, RunBusyError
from nlm.io.atomic import is_temp_file, write_error, write_text_atomic

RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "meta.json", "config.json")
LOCK, STAGING, REPLACED = ".lock", ".staging", ".replaced"


def _lock(root: Path, *, claim: bool = True) -> int:
    """Lock RUN/.lock for this process, writing its pid there; RunBusyError naming the holder if taken.
    Without `claim`, only look: the file must exist, and nothing is written to it."""
    try:
        fd = os.open(root / LOCK, os.O_RDWR | (os.O_CREAT if claim else 0), 0o644)
    except OSError as e:
        raise write_error(root / LOCK, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunBusyError(
            f"{root} is in use by another nlm process (pid {holder}); "
            "wait for it to finish or stop it, or train into another folder"
        ) from None
    if claim:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _refuse_a_run_there(output: Path, *, force: bool) -> None:
    """OutputExistsError when `output` already holds a run and `force` was not given."""
    existing = [name for name in RUN_FILES if (output / name).exists()]
    if existing and not force:
        raise OutputExistsError(
            f"{output} already holds a run ({', '.join(existing)}); "
            f"pass --resume {output} to continue it or --force to replace it"
        )


def _recover(root: Path) -> None:
    """Finish or undo what a process killed in this folder left half done."""
    staging, replaced = root / STAGING, root / REPLACED
    if replaced.is_dir():  # killed while replacing an old run: the new one had its checkpoint, so it wins
        if staging.is_dir():
            for item in staging.iterdir():
                os.replace(item, root / item.name)
        shutil.rmtree(replaced)
    if staging.is_dir():  # a new run that never wrote a checkpoint: nothing of it to keep
        shutil.rmtree(staging)
    for item in root.iterdir():
        if item.is_file() and is_temp_file(item.name):
            item.unlink()


class RunFolder:
    """The folder of one run, locked by this process until `close`."""

    def __init__(self, root: Path, lock_fd: int, *, created: bool, published: bool) -> None:
        self.root, self._lock_fd, self.created, self.published = root, lock_fd, created, published

    @staticmethod
    def check_free(output: Path, *, force: bool) -> None:
        """Refuse at once, before a single input is read, what `create` would refuse: an `output` that is not a
        folder, one that holds a run (without `force`), one another process trains in.  Nothing is written."""
        output = Path(output)
        if output.exists() and not output.is_dir():
            raise OutputExistsError(f"{output} exists and is not a folder; give -o a folder for the run")
        if (output / LOCK).is_file():
            os.close(_lock(output, claim=False))  # closing the descriptor releases the lock at once
        if output.is_dir():
            _refuse_a_run_there(output, force=force)

    @classmethod
    def create(cls, output: Path, *, force: bool) -> RunFolder:
        """A folder for a new run; its files stay in RUN/.staging until `publish`."""
        output = Path(output)
        if output.exists() and not output.is_dir():
            raise OutputExistsError(f"{output} exists and is not a folder; give -o a folder for the run")
        created = not output.exists()
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(output, e) from None
        fd = _lock(output)
        folder = cls(output, fd, created=created, published=False)
        try:
            _recover(output)
            _refuse_a_run_there(output, force=force)
            (output / STAGING).mkdir()
        except BaseException:
            folder.abandon()
            raise
        return folder

    @classmethod
    def open(cls, run_dir: Path) -> RunFolder:
        """The folder of an existing run, to resume it."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise InputMissingError(f"{run_dir}: no such run folder")
        fd = _lock(run_dir)
        folder = cls(run_dir, fd, created=False, published=True)
        try:
            _recover(run_dir)
        except BaseException:
            folder.close()
            raise
        return folder

    @property
    def path(self) -> Path:
        """Where the run's files go now: the staging folder until the first checkpoint, then the run folder."""
        return self.root if self.published else self.root / STAGING

    def publish(self) -> None:
        """Make the staged run the folder's run (after its first checkpoint); an older run's files go."""
        if self.published:
            return
        replaced = self.root / REPLACED
        replaced.mkdir()
        for name in RUN_FILES:
            if (self.root / name).exists():
                os.replace(self.root / name, replaced / name)
        for item in (self.root / STAGING).iterdir():
            os.replace(item, self.root / item.name)
        (self.root / STAGING).rmdir()
        shutil.rmtree(replaced)
        self.published = True

    def abandon(self) -> None:
        """Undo a start that wrote no checkpoint: the staged files go, and so does a folder this run created."""
        shutil.rmtree(self.root / STAGING, ignore_errors=True)
        if self.created:
            shutil.rmtree(self.root, ignore_errors=True)
        self.close()

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the lock; the file stays, so no one can race its removal
            self._lock_fd = -1

    def truncate_metrics(self, step: int) -> int:
        """Drop metrics.jsonl lines logged after `step` (a checkpoint older than them is being resumed);
        returns how many."""
        path = self.root / "metrics.jsonl"
        if not path.exists():
            return 0
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
        if len(kept) != len(lines):
            write_text_atomic(path, "".join(line + "\n" for line in kept))
        return len(lines) - len(kept)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

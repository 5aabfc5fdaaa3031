"""The files a run trains on: recorded in config.json with their checksum, and found again when it resumes.

A recorded file keeps its absolute path, its path relative to the run folder (so a project
moved as a whole still resumes) and its sha256.  On resume the file is looked for where the
user points (`--train NEW_PATH`), then at both recorded paths; whichever is found must have
the recorded sha256, because a run cannot change its data half way.
"""

from __future__ import annotations

import os
from pathlib import Path

from nlm.errors import ConfigError, InputMissingError
from nlm.io.text import STDIO, file_sha256


def record_file(path: str | None, run_dir: Path, *, sha256: str | None = None) -> dict | None:
    """What config.json keeps of an input file (None stays None; stdin is recorded without a path)."""
    if path is None:
        return None
    if str(path) == STDIO:
        return {"path": STDIO, "sha256": sha256}
    absolute = Path(path).resolve()
    if not absolute.is_file():
        raise InputMissingError(f"{path}: {'is a directory, not a file' if absolute.is_dir() else 'no such file'}")
    return {
        "path": str(absolute),
        "from_run": os.path.relpath(absolute, Path(run_dir).resolve()),
        "sha256": sha256 or file_sha256(absolute),
    }


def locate_file(record: dict | None, *, given: str | None, run_dir: Path, option: str) -> str | None:
    """The path of a recorded input now: `given` (checked against the record), else where it was recorded."""
    if record is None:
        if given is not None:
            raise ConfigError(f"{option} cannot be added when resuming; the run was started without it")
        return None
    candidates = [given] if given is not None else [record["path"], str(Path(run_dir) / record.get("from_run", ""))]
    found = next((c for c in candidates if c != STDIO and Path(c).exists()), None)
    if found is None:
        if given is not None:
            raise InputMissingError(f"{given}: no such file")
        what = "stdin" if record["path"] == STDIO else record["path"]
        same = f" (sha256 {record['sha256'][:12]}...)" if record.get("sha256") else ""
        raise InputMissingError(
            f"{run_dir} was trained on {what}, which is not there now; "
            f"pass {option} PATH to the same data{same} to resume"
        )
    if record.get("sha256") and Path(found).is_file() and file_sha256(found) != record["sha256"]:
        raise ConfigError(
            f"{found} is not the file {run_dir} was trained on (its sha256 differs); "
            "a run cannot change its data when resuming: start a new run with -o"
        )
    return found

"""The folder a synthetic corpus is written into: created on demand, never overwritten unless asked."""

from __future__ import annotations

from pathlib import Path

from nlm.errors import OutputError, OutputExistsError


def prepare_corpus_folder(directory: str | Path, names: list[str], *, overwrite: bool) -> Path:
    """Create `directory`; refuse if it is a file, or already holds one of `names` and `overwrite` is off."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"{directory} exists and is not a folder")
    existing = [n for n in names if (directory / n).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{directory} already holds {', '.join(existing)}; pass --force to replace them")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder {directory} ({e.strerror})") from None
    return directory

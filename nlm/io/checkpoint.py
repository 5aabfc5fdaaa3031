"""Checkpoints: one self-contained, versioned file per model, safe to load, written atomically.

A checkpoint is a plain dict of tensors, numbers, strings and bytes, so
`torch.load(path, weights_only=True)` reads it without running any code:

    format, version     "nlm-checkpoint", FORMAT_VERSION
    kind                "lm" | "vision" | "autoencoder"
    config              {"model": ..., "train": ..., ...} plain values
    model               the model's state_dict (CPU tensors)
    vocab               the vocabulary (symbols and counts, or sentencepiece model bytes), LMs only
    trainer             optimizer, scheduler, progress and task state (hidden state, data position)
    rng                 torch RNG states
    metrics             the evaluation this checkpoint was saved at
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from nlm.errors import CheckpointError, InputMissingError
from nlm.io.atomic import write_bytes_atomic, write_text_atomic

FORMAT = "nlm-checkpoint"
FORMAT_VERSION = 1
KIND_NAMES = {"lm": "a language model", "vision": "a vision model", "autoencoder": "an autoencoder"}
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
_NO_CHECKPOINT = "a PyTorch file that holds no nlm checkpoint"
_LEGACY_MAGIC = (
    b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # the older torch.save: a pickled magic number
)


def to_cpu(tree: Any) -> Any:
    """A copy of a nested state with every tensor on the CPU, so GPU runs load anywhere."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_cpu(v) for v in tree)
    return tree


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write all of it or nothing (`nlm.io.atomic`), every tensor on the CPU."""
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **to_cpu(payload)}
    buffer = io.BytesIO()  # serialised first: torch.save reports a failing file as a bare RuntimeError
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getbuffer())


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its best.pt, else last.pt)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise InputMissingError(f"{p} holds no best.pt or last.pt")
    if not p.exists():
        raise InputMissingError(f"{p}: no such checkpoint")
    return p


def _refused_global(error: Exception) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return f" ({found.group(1)})" if found else ""


def _zip_problem(path: Path) -> str | None:
    """What is wrong with a zip file as a PyTorch file, or None when it is a sound one."""
    try:
        with zipfile.ZipFile(path) as archive:
            torch_file = any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist())
            damaged = archive.testzip() is not None
    except (zipfile.BadZipFile, OSError, EOFError):
        return "a truncated or damaged PyTorch file (its zip directory is unreadable)"
    if not torch_file:
        return "a zip archive, not a PyTorch file"
    return "a damaged PyTorch file (a member fails its checksum)" if damaged else None


def _what_it_is(path: Path, error: Exception) -> str:
    """Why torch.load failed, in words: what the file is rather than what nlm wanted."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
    except OSError as e:
        raise InputMissingError(f"{path}: cannot read ({e.strerror})") from None
    if not head:
        return "the file is empty"
    if head.startswith(_ZIP_MAGIC):
        problem = _zip_problem(path)
        if problem:
            return problem
    elif not head.startswith(_LEGACY_MAGIC):
        if head[:1] == b"\x80" and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
            return f"not a PyTorch file but a Python pickle{_refused_global(error)}, which nlm never unpickles"
        return "not a PyTorch file"
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error):
        return f"{_NO_CHECKPOINT}: it stores Python objects{_refused_global(error)}, which nlm never unpickles"
    return "a truncated or damaged PyTorch file"


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Load on the CPU with weights_only=True; check format, version and (if given) kind."""
    p = resolve_checkpoint(path)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (KeyError, OSError, EOFError ...) for foreign files
        raise CheckpointError(f"{p} is not an nlm checkpoint: {_what_it_is(p, e)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an nlm checkpoint: {_NO_CHECKPOINT}")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{p} has checkpoint format version {payload.get('version')}; this nlm reads {FORMAT_VERSION}"
        )
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(
            f"{p} holds {KIND_NAMES.get(payload.get('kind'), 'another kind of model')}, "
            f"but this command needs {KIND_NAMES[kind]}"
        )
    return payload


def write_meta(run_dir: Path, name: str, summary: dict[str, Any]) -> None:
    """Keep `meta.json` beside the checkpoints: a readable summary of each one."""
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("format", FORMAT)
    meta["version"] = FORMAT_VERSION
    meta.setdefault("checkpoints", {})[name] = summary
    write_text_atomic(meta_path, json.dumps(meta, indent=2, default=str) + "\n")


def inconsistent_checkpoint(path: Path, error: Exception) -> CheckpointError:
    first_line = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
    return CheckpointError(f"{path} is an incomplete or inconsistent checkpoint ({first_line})")

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
from pathlib import Path
from typing import Any

import torch

from nlm.errors import CheckpointError, InputMissingError
from nlm.io.atomic import write_bytes_atomic, write_text_atomic

FORMAT = "nlm-checkpoint"
FORMAT_VERSION = 1
KIND_NAMES = {"lm": "a language model", "vision": "a vision model", "autoencoder": "an autoencoder"}


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


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Load on the CPU with weights_only=True; check format, version and (if given) kind."""
    p = resolve_checkpoint(path)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign or truncated files
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{p} is not a readable nlm checkpoint ({first_line[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an nlm checkpoint")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{p} has checkpoint format version {payload.get('version')}; this nlm reads {FORMAT_VERSION}")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{p} holds {KIND_NAMES.get(payload.get('kind'), 'another kind of model')}, "
                              f"but this command needs {KIND_NAMES[kind]}")
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

"""`nlm export`: a trained language model as a small, self-contained checkpoint to score and generate with.

What scoring needs and nothing else: the weights (in float32; bfloat16, half the bytes; or int8
recurrent layers on ONNX Runtime and the rest in bfloat16: nlm/lm/int8.py), the configs and the
vocabulary, in the same format as every nlm checkpoint, so `torch.load(..., weights_only=True)`
reads it and every command that takes `-m` loads it.  The optimizer, the trainer's state and the
RNG are left out, so it cannot be resumed.  A bf16 export computes in whatever `--precision` asks
for: its weights are loaded into float32 parameters exactly (every bfloat16 value is a float32
value), so `--precision bf16` on it differs from `--precision bf16` on the original only where
autocast leaves a weight in float32 (the embedding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nlm.config import EXPORT_PRECISIONS, check
from nlm.io.atomic import check_distinct
from nlm.io.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from nlm.io.text import file_sha256
from nlm.lm.int8 import quantized_recurrent
from nlm.lm.loading import load_language_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}  # int8: all but the recurrent layers


@dataclass(frozen=True)
class Exported:
    """What `export_language_model` wrote."""

    source: Path  # the checkpoint exported (a run folder resolved to its best.pt, else last.pt)
    output: Path
    precision: str  # the weights' dtype: fp32, bf16, or int8 (recurrent layers; the rest bf16)
    source_bytes: int
    output_bytes: int
    parameters: int  # numbers in the weights (tied ones counted once)


def cast_weights(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every floating-point tensor of a state_dict in `dtype`; tensors that shared memory (tied weights) still share."""
    cast: dict[tuple, torch.Tensor] = {}
    out = {}
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            out[name] = tensor
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        out[name] = cast.setdefault(key, tensor.to(dtype))
    return out


def export_language_model(path: str | Path, *, output: str | Path, precision: str = "bf16") -> Exported:
    """Write the language model in `path` (a checkpoint or a run folder) to `output`, its weights in `precision`."""
    check(
        precision in EXPORT_PRECISIONS, f"--precision must be one of {', '.join(EXPORT_PRECISIONS)}, not {precision!r}"
    )
    source = resolve_checkpoint(path)
    check_distinct(output, [source])
    original = load_language_model(source)  # a language model, whole and consistent: refused here with its own message
    payload = load_checkpoint(source, kind="lm")
    weights = cast_weights(payload["model"], DTYPES[precision])
    extra = {}
    if precision == "int8":  # the recurrent layers as int8 ONNX, the rest in bf16
        extra["int8"] = {"onnx": quantized_recurrent(original.model)}
        weights = {name: w for name, w in weights.items() if not name.startswith("rnn.")}
    save_checkpoint(
        Path(output),
        {
            "kind": "lm",
            "config": payload["config"],
            "vocab": payload["vocab"],
            "model": weights,
            "metrics": payload.get("metrics", {}),
            "exported": {"from": source.name, "sha256": file_sha256(source), "precision": precision},
            **extra,
        },
    )
    unique = {t.untyped_storage().data_ptr(): t.numel() for t in weights.values() if t.is_floating_point()}
    return Exported(
        source, Path(output), precision, source.stat().st_size, Path(output).stat().st_size, sum(unique.values())
    )

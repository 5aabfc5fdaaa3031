"""Choosing the device and the precision, and seeding every random number generator nlm uses.

Precision: `fp32`, or `bf16` (autocast: matrix products and recurrent cells in bfloat16; weights,
optimizer state, log-softmax, losses and every accumulated score stay float32), or `auto`, which
takes bf16 where the hardware computes it natively and fp32 elsewhere.  Native means a CUDA GPU
with bf16, or a CPU with AMX or AVX512-BF16 instructions (Intel Sapphire Rapids and later, AMD
Zen 4 and later), where oneDNN runs bf16 products faster than fp32 ones; measured on an AMD EPYC
with AVX512-BF16 and no AMX, one thread, CPU time, medians of alternating rounds on a loaded
machine: a 512 x 512 GEMM 2.6-2.8x as fast as in fp32, a 2 x 300 LSTM at batch 64 x 35 1.8x, the
`ptb-25min` model's forward with its adaptive head 1.6x, a training step of it (batch 20 x 20,
forward, backward, clipping, SGD) 1.4x.  A CPU with AVX2 alone emulates bf16, slower than fp32, so
`auto` keeps fp32 there.
"""

from __future__ import annotations

import contextlib
import random

import torch

from nlm.config import DEVICES, PRECISIONS
from nlm.errors import ConfigError, DeviceError


def pick_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA, then MPS, then the CPU; naming an absent device is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {name} was asked for, but this machine has no CUDA device (try --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("--device mps was asked for, but MPS is not available here (try --device cpu)")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively: CUDA with bf16 support, or a CPU with AMX or AVX512-BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's, from the CPUID flags
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def pick_precision(name: str, device: torch.device) -> str:
    """`fp32` or `bf16` for `--precision NAME` on `device`: auto is bf16 where `bf16_is_fast`, else fp32."""
    if name not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    if name == "bf16" and device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--precision bf16 runs on the CPU or CUDA, not on {device.type}; use --precision fp32")
    return name


def autocast(device: torch.device, precision: str):
    """The autocast of a precision: bf16 on the CPU or CUDA; fp32 (anything else) runs as it is."""
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (CPU and every GPU)."""
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """The torch RNG state, CPU and CUDA, as tensors (safe for weights_only loading)."""
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

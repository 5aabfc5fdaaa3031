"""Choosing the device and the precision, seeding every random number generator nlm uses, and whether a model fits
in memory.

A model is built once on PyTorch's meta device (shapes only, no memory, no random draws) to
count its parameters and bytes; one larger than the memory it is bound for is refused with one
line that gives both numbers, instead of an allocator's traceback.  `is_out_of_memory` tells the
allocators' own failures (CPU and CUDA) from other errors, for the run recipe to report alike.

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
import os
import random
import re
from collections.abc import Callable

import torch
from torch import nn

from nlm.config import DEVICES, PRECISIONS
from nlm.errors import ConfigError, DeviceError, OutOfMemoryError


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


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator's "can't allocate memory"."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def out_of_memory(error: BaseException, doing: str = "") -> OutOfMemoryError:
    """The one line for an allocator's failure (while `doing` something): where, and how much it asked for."""
    in_bytes = re.search(r"tried to allocate (\d+) bytes", str(error), re.IGNORECASE)  # the CPU's allocator
    in_units = re.search(r"tried to allocate ([\d.]+ \w+)", str(error), re.IGNORECASE)  # CUDA's: "20.00 GiB"
    size = human_bytes(int(in_bytes.group(1))) if in_bytes else in_units.group(1) if in_units else None
    where = "the GPU" if isinstance(error, torch.OutOfMemoryError) else "the CPU"
    return OutOfMemoryError(
        f"out of memory on {where}{' ' + doing if doing else ''}"
        + (f" (an allocation of {size} failed)" if size else "")
    )


def memory_size(device: torch.device) -> int | None:
    """The bytes of memory a model on `device` can use at most: the machine's RAM, or the GPU's; None if unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def size_in_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def human_bytes(size: float) -> str:
    """`512.3 MB`: decimal units, as disks and `free --si` count."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"


def check_model_fits(build: Callable[[], nn.Module], device: torch.device | None = None) -> nn.Module:
    """`build()` on the CPU, once its parameters are known to fit in the CPU's memory (and `device`'s)."""
    with torch.device("meta"):
        shape = build()
    parameters = sum(p.numel() for p in shape.parameters())
    size = size_in_bytes(shape)
    needs = f"the model has {parameters:,} parameters ({human_bytes(size)})"
    for place in dict.fromkeys([torch.device("cpu"), device or torch.device("cpu")]):  # built on the CPU, then moved
        memory = memory_size(place)
        if memory is not None and size > memory:
            raise OutOfMemoryError(
                f"{needs}, more than the {human_bytes(memory)} of memory on {_where(place)}; choose smaller sizes"
            )
    try:
        return build()
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        raise OutOfMemoryError(
            f"{needs}, which do not fit in the memory free on the CPU; choose smaller sizes"
        ) from None


def _where(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "this machine"

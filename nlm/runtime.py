"""Choosing the device, seeding every random number generator nlm uses, and whether a model fits in memory.

A model is built once on PyTorch's meta device (shapes only, no memory, no random draws) to
count its parameters and bytes; one larger than the memory it is bound for is refused with one
line that gives both numbers, instead of an allocator's traceback.  `is_out_of_memory` tells the
allocators' own failures (CPU and CUDA) from other errors, for the run recipe to report alike.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Callable

import torch
from torch import nn

from nlm.config import DEVICES
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


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked for; elsewhere a no-op (the CPU and MPS train in float32)."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
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

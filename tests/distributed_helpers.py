"""Running `nlm` as several processes: forked ranks with the environment torchrun gives them, or the real launcher."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time

from cli_helpers import nlm
from conftest import REPO

TIMEOUT = 240  # generous for a busy machine: a hang still fails


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, argv: list[str], queue) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    result = nlm(*argv)
    queue.put((rank, result.exit_code, result.stderr))


def ranks(*args, world: int = 2) -> list[tuple[int, str]]:
    """`nlm ARGS` in `world` processes forked from this one, with the environment torchrun gives them:
    (exit code, stderr) per rank."""
    context = multiprocessing.get_context("fork")
    queue, port = context.Queue(), _free_port()
    processes = [
        context.Process(target=_rank, args=(r, world, port, [str(a) for a in args], queue)) for r in range(world)
    ]
    for process in processes:
        process.start()
    results, deadline = {}, time.monotonic() + TIMEOUT
    try:
        for _ in processes:
            rank, code, stderr = queue.get(timeout=max(1.0, deadline - time.monotonic()))
            results[rank] = (code, stderr)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return [results[r] for r in range(world)]


def torchrun(*args, nproc: int = 2, **popen) -> subprocess.Popen:
    """The real launcher: `torchrun --standalone --nproc-per-node 2 -m nlm ARGS`."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        "-m",
        "nlm",
        *map(str, args),
    ]
    return subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True, **popen)

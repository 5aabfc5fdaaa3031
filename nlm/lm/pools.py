"""Input lines in pools for batched scoring: fixed-size pools, or whatever lines are already waiting.

A bad line (an NLMError from the reader, such as undecodable bytes) ends the input, but
the lines before it are still handed out first, so their results are written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

from nlm.errors import NLMError


def fixed_pools(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of `size` lines (the last one shorter).  A bad line (NLMError) ends the input:
    the lines before it are still yielded, then the error is raised."""
    iterator = iter(lines)
    while True:
        pool: list[str] = []
        error: NLMError | None = None
        try:
            for line in iterator:
                pool.append(line)
                if len(pool) == size:
                    break
        except NLMError as e:
            error = e
        if pool:
            yield pool
        if error is not None:
            raise error
        if len(pool) < size:
            return


_END = object()


def waiting_pools(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of the lines already waiting (at least one, at most `size`), read by a background thread,
    so a slow producer's every line is answered as soon as it arrives."""
    waiting: queue.Queue = queue.Queue(maxsize=4 * size)

    def read() -> None:
        try:
            for line in lines:
                waiting.put(line)
            waiting.put(_END)
        except BaseException as e:  # handed to the consumer, which raises it after the lines before it
            waiting.put(e)

    threading.Thread(target=read, name="nlm-reader", daemon=True).start()
    item = waiting.get()
    while True:
        pool: list[str] = []
        while isinstance(item, str):
            pool.append(item)
            try:
                item = waiting.get_nowait() if len(pool) < size else None
            except queue.Empty:
                item = None  # nothing more waiting: answer these lines now
            if item is None:
                break
        if pool:
            yield pool
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        if item is None:
            item = waiting.get()

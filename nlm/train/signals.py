"""Ctrl-C and SIGTERM during training: note the signal, let the current step finish, save, then stop."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Inside the block, the first SIGINT or SIGTERM only sets `signum`; a second one raises KeyboardInterrupt
    (stop at once).  Signals set to be ignored (a background job's SIGINT) or handled by someone else stay so."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) not in (signal.default_int_handler, signal.SIG_DFL):
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handler)
            except ValueError:  # not in the main thread: signals go to the main thread's handlers
                break
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

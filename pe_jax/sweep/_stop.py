"""Stopping a sweep on SIGINT or SIGTERM: a flag the executors and the trainer poll."""

from __future__ import annotations

import signal
from collections.abc import Sequence


class StopOnSignals:
    """A stop request from SIGINT or SIGTERM, for the executors' `stop`.

    Inside the `with` block the first of these signals makes the instance return True (no new
    run starts, queued runs are cancelled, running runs checkpoint and stop, claims are
    released); with `once` the handlers in place before are put back at once, so a second
    signal acts as it did before (Ctrl-C twice: KeyboardInterrupt); without it (a worker
    process, which may get both the terminal's SIGINT and its parent's SIGTERM) every later
    signal is absorbed as well. Only the main thread can install them.

    Attributes:
      signum: the signal received, or None.
    """

    def __init__(
        self, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM), *, once: bool = True
    ):
        self.signals = tuple(signals)
        self.once = once
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM); 0 without a signal."""
        return 0 if self.signum is None else 128 + self.signum

    def _handle(self, signum, _frame) -> None:
        self.signum = self.signum or signum
        if self.once:
            self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def __enter__(self) -> StopOnSignals:
        for number in self.signals:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

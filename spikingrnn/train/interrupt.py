"""``StopRequest``: Ctrl-C asks a training loop to stop at the next batch boundary instead of killing it mid-step."""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Callable, Union

# what signal.signal returns: the previous handler (a callable, SIG_DFL/SIG_IGN, or None if not set from Python)
_Handler = Union[Callable[[int, Union[FrameType, None]], Any], int, signal.Handlers, None]


class StopRequest:
    """While entered (in the main thread), the first SIGINT sets :attr:`requested` instead of raising
    ``KeyboardInterrupt``; the loop checks it after each batch, saves, and stops. A second SIGINT
    raises ``KeyboardInterrupt`` at once, as usual. Outside the main thread (where Python cannot
    install signal handlers) it does nothing and ``requested`` stays ``False``. The previous handler
    is restored on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: _Handler = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the second Ctrl-C interrupts at once

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

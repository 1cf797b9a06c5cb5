"""Ctrl-C that cannot be lost: an interrupt repeats every second until the command has handled it.

Python raises ``KeyboardInterrupt`` in whatever code runs when SIGINT arrives. Inside a garbage-collection callback
(a weakref's, a ``__del__``) the exception is printed as "Exception ignored" and dropped, and the command runs on:
measured on ``claim demo``, an interrupt 7 s into the run was lost this way. The console script installs this
handler, which also keeps such a dropped interrupt from printing that traceback and raises it again at once, where
it can stop the command; the CLI calls :func:`handled` once it has caught the interrupt. Plain Python, no claim
imports (every layer may use it).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = ["install", "handled", "uninstall"]

_REPEAT_S = 1.0
_installed: tuple[Any, Any, Any] | None = None  # what install() replaced: SIGINT and SIGALRM handlers, unraisable hook
_pending = False  # an interrupt raised and not yet handled


def _raise_again(signum: int, frame: FrameType | None) -> None:
    # Not while the interrupt is on its way up (its finally and __exit__ blocks clean up), nor once handled (a timer
    # signal already sent when handled() stopped the timer).
    if _pending and not isinstance(sys.exc_info()[1], KeyboardInterrupt):
        raise KeyboardInterrupt


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    # Raised now as Python would; if something swallows it, SIGALRM raises it again until handled() stops it.
    global _pending
    _pending = True
    signal.setitimer(signal.ITIMER_REAL, _REPEAT_S, _REPEAT_S)
    raise KeyboardInterrupt


def _unraisable(info: Any) -> None:
    if isinstance(info.exc_value, KeyboardInterrupt):
        if _pending:  # dropped in a callback: raise it again right away
            signal.setitimer(signal.ITIMER_REAL, 0.01, _REPEAT_S)
        return
    (_installed[2] if _installed else sys.__unraisablehook__)(info)


def install() -> None:
    """Make Ctrl-C repeat until handled, where Python's own handler is in place (not where SIGINT is ignored, as in
    a background job, or handled by someone else), on the main thread of a system with interval timers."""
    global _installed
    if (_installed or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer")
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None)):
        return
    _installed = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGALRM), sys.unraisablehook)
    signal.signal(signal.SIGALRM, _raise_again)
    signal.signal(signal.SIGINT, _on_interrupt)
    sys.unraisablehook = _unraisable


def handled() -> None:
    """The interrupt was caught: stop repeating it."""
    global _pending
    _pending = False
    if _installed:
        signal.setitimer(signal.ITIMER_REAL, 0.0)


def uninstall() -> None:
    """Stop repeating and put back what :func:`install` replaced (the command is over: interpreter shutdown, or the
    caller's own process when ``claim.console.main`` is called from Python)."""
    global _installed
    handled()
    if _installed:
        interrupt, alarm, hook = _installed
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGALRM, alarm)
        sys.unraisablehook = hook
        _installed = None

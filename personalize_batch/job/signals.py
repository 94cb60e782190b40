"""Stopping a job by a signal, safely: SIGINT/SIGTERM raise Interrupted in the main
thread (again every 0.25 s until the job has caught it), except while an output is
created, committed or aborted, when the stop is held and raised as that ends.

The state is the process's own (signal handlers are): module globals, touched only by
the job's main thread and the handlers.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from .. import storage
from ..errors import Interrupted

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)

_deferring = 0  # > 0 while an output is being created, committed or aborted
_deferred: list[int] = []
_stops: list[int] = []  # the stop signal received, until run_job has caught its Interrupted


def raise_on_signal(signum: int, frame: Any) -> None:
    """Raise Interrupted, and again every 0.25 s (SIGALRM) until run_job has caught it.

    Python runs a handler wherever the main thread is, also inside a __del__ or a weakref
    callback, which print the exception and drop it: the job ran on (on an idle pipe,
    forever). While the stop is on its way out (cleanup in an __exit__ or finally sees
    it as the exception being handled) the repeat stays quiet. While an output changes
    state the stop is held and raised when that is done.
    """
    if signum == signal.SIGALRM:
        if not _stops or isinstance(sys.exc_info()[1], Interrupted):
            return
        signum = _stops[0]
    else:
        _stops[:] = [signum]
        signal.setitimer(signal.ITIMER_REAL, 0.25, 0.25)
    if _deferring:
        _deferred.append(signum)  # raised when the critical section ends
        return
    raise Interrupted(f"stopped by {signal.Signals(signum).name}", signum)


def stop_caught() -> None:
    """run_job has the stop (or another failure): no more repeats."""
    if _stops:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _stops.clear()


@contextlib.contextmanager
def held(drop: bool = False) -> Iterator[None]:
    """Hold SIGINT/SIGTERM while an output file changes state, so a stop can never
    fall between creating a temp file and the code that removes it. With `drop`, a stop
    held meanwhile is forgotten instead of raised (the job it would stop is done)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if drop and not _deferring and _deferred:
            _deferred.clear()
            stop_caught()
    if not _deferring and _deferred:
        signum = _deferred.pop()
        _deferred.clear()
        raise_on_signal(signum, None)


@contextlib.contextmanager
def guarded_output(
    target: storage.Target,
    compresslevel: int | None = None,
    keep: Callable[[BaseException], bool] | None = None,
    opened: Callable[[IO[bytes]], None] | None = None,
    committed: Callable[[], None] | None = None,
) -> Iterator[IO[bytes]]:
    """An AtomicOutput whose creation, commit and abort a signal cannot interrupt; on a
    failure for which `keep(exc)` is true its temporary file or its S3 upload's completed
    parts are kept (for a resume). `opened(stream)` runs once it exists and `committed()`
    once it is committed, before a stop held meanwhile is raised (so the checkpoint never
    names an upload or temp file that became the output)."""
    output = storage.AtomicOutput(target, compresslevel=compresslevel)
    try:
        with held():  # a stop held here is raised as this block ends
            stream = output.__enter__()
            if opened is not None:  # records the temp file or upload: before any stop
                opened(stream)
        yield stream
    except BaseException as exc:
        with held():
            output.abort(keep=keep is not None and keep(exc))
        raise
    with held():
        output.commit(keep=keep)
        if committed is not None:
            committed()


def install() -> dict[int, Any]:
    """Stop signals raise Interrupted from here on; the handlers they had, to restore."""
    old = {}
    for sig in STOP_SIGNALS:
        try:
            old[sig] = signal.signal(sig, raise_on_signal)
        except ValueError:
            pass  # not the main thread: signals stay with the caller
    return old


def restore(old: dict[int, Any]) -> None:
    """The handlers `install` replaced."""
    for sig, handler in old.items():
        signal.signal(sig, handler)

"""Parallel scoring on worker processes that keeps output order (issue: --workers).

The solution is loaded once, before the workers are forked, so they share its arrays
copy-on-write instead of each holding a copy. The parent reads lines and writes results;
at most `2 x workers` chunks are in flight, so memory does not grow with the input.
Results come back in submission order, so the output is byte-identical to one worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .errors import PbatchError

_TASK: Callable[[Any], Any] | None = None  # in a worker: what to run on each chunk


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's output bytes and what it counted."""

    data: bytes
    answered: int
    errors: int
    errors_data: bytes = b""
    ids: Any = None  # scoring.IdCounts: ids looked up, unknown ones, examples
    ids_not_strings: int = 0
    read: int = 0  # lines the worker read and counted (a block, not lines the parent read)
    blank: int = 0
    seconds: float = 0.0  # the worker's time on a block (answer_block)


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this worker when its parent dies (a `kill -9` of `pbatch run` must
    not leave workers behind, holding its pipes open)."""
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: workers end when the parent's queues close
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(task: Callable[[Any], Any], parent: int) -> None:
    global _TASK
    _die_with_parent(parent)
    _TASK = task  # inherited through fork, never pickled
    # the parent owns the job: it handles Ctrl-C and stops the workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(args: tuple) -> Any:
    assert _TASK is not None
    return _TASK(*args)


class WorkerPool:
    """`task(*args)` on `n` forked processes; `map_ordered` yields results in order.

    A worker that dies (killed, out of memory) breaks the pool: the job fails with a
    clear error instead of waiting forever for the lost chunk."""

    def __init__(self, task: Callable[[Any], Any], n: int) -> None:
        self.n = n
        self.executor = ProcessPoolExecutor(
            n,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(task, os.getpid()),
        )
        # fork every worker now (a fork-context pool starts them all at the first task),
        # so that forking happens here, where the caller can hold signals, not mid-job
        self.executor.submit(os.getpid).result()

    def map_ordered(self, tasks: Iterable[tuple | None]) -> Iterator[Any]:
        """task(*args) for each args tuple, results in order, at most 2n in flight; a
        finished result is handed on as soon as those before it are, and every result
        so far at a None, then None (the input paused: its lines are answered as they
        come)."""
        pending: deque = deque()
        try:
            for args in tasks:
                if args is None:
                    while pending:
                        yield pending.popleft().result()
                    yield None
                    continue
                pending.append(self.executor.submit(_run, args))
                while pending and (len(pending) >= 2 * self.n or pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise PbatchError("a scoring worker process died (killed or out of memory)") from None

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

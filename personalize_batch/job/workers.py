"""Parallel scoring on worker processes that keeps output order (issue: --workers).

The solution is loaded once, before the workers are forked, so they share its arrays
copy-on-write instead of each holding a copy. The parent reads lines and writes results;
at most `2 x workers` chunks are in flight, so memory does not grow with the input.
Results come back in submission order, so the output is byte-identical to one worker.
"""

from __future__ import annotations

import dataclasses
import mmap
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from ..errors import PbatchError

_TASK: Callable[[Any], Any] | None = None  # in a worker: what to run on each chunk
_SLOTS: mmap.mmap | None = None  # in a worker: the memory shared with the parent
_SLOT_BYTES = 0
# a result whose data is at most this long comes back through memory shared with the
# parent, not through the pool's pipe (WorkerPool)
SLOT_BYTES = 16 << 20


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's output bytes and what it counted."""

    data: bytes | memoryview  # memoryview: a view of a pool's shared memory (map_ordered)
    answered: int
    errors: int
    errors_data: bytes = b""
    ids: Any = None  # scoring.IdCounts: ids looked up, unknown ones, examples
    ids_not_strings: int = 0
    lists_ignored: int = 0  # lines with an itemList their recipe does not read
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


def _init_worker(
    task: Callable[[Any], Any], parent: int, slots: mmap.mmap, slot_bytes: int
) -> None:
    global _TASK, _SLOTS, _SLOT_BYTES
    _die_with_parent(parent)
    _TASK = task  # inherited through fork, never pickled
    _SLOTS, _SLOT_BYTES = slots, slot_bytes
    # the parent owns the job: it handles Ctrl-C and stops the workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(slot: int, args: tuple) -> tuple[int | None, Any]:
    """The task's result, and where its data went: the length written into the shared
    slot `slot` (the result then carries no data), or None when it did not fit."""
    assert _TASK is not None and _SLOTS is not None
    result = _TASK(*args)
    if isinstance(result, ChunkResult) and len(result.data) <= _SLOT_BYTES:
        start = slot * _SLOT_BYTES
        _SLOTS[start : start + len(result.data)] = result.data
        return len(result.data), dataclasses.replace(result, data=b"")
    return None, result


class WorkerPool:
    """`task(*args)` on `n` forked processes; `map_ordered` yields results in order.

    A worker that dies (killed, out of memory) breaks the pool: the job fails with a
    clear error instead of waiting forever for the lost chunk.

    A ChunkResult's data (the output lines, most of what a worker sends back) does not go
    through the pool's pipe when it fits in `slot_bytes`: each task in flight has a slot
    of memory that the parent shares with the workers (mapped before they are forked),
    the worker copies the data there, and `map_ordered` hands on a view of the slot. That
    saves the pickling, the pipe's two copies and a fresh buffer per result in the
    parent, which shares the cores with the workers."""

    def __init__(self, task: Callable[[Any], Any], n: int, slot_bytes: int = SLOT_BYTES) -> None:
        self.n = n
        # tasks map_ordered keeps in flight, the one whose result is handed on included
        self.in_flight = 2 * n
        self.slot_bytes = slot_bytes
        # one slot per task in flight, shared and anonymous: a page takes memory only
        # once a result is written there
        self.slots = mmap.mmap(-1, self.in_flight * slot_bytes, flags=mmap.MAP_SHARED)
        self.executor = ProcessPoolExecutor(
            n,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(task, os.getpid(), self.slots, slot_bytes),
        )
        # fork every worker now (a fork-context pool starts them all at the first task),
        # so that forking happens here, where the caller can hold signals, not mid-job
        self.executor.submit(os.getpid).result()

    def map_ordered(self, tasks: Iterable[tuple | None]) -> Iterator[Any]:
        """task(*args) for each args tuple, results in order, at most 2n in flight; a
        finished result is handed on as soon as those before it are, and every result
        so far at a None, then None (the input paused: its lines are answered as they
        come). A ChunkResult's data may be a view of shared memory: it is valid until
        the next result is asked for. Stopping early (closing the iterator) waits for
        the tasks already handed out."""
        pending: deque = deque()
        free = list(range(self.in_flight))
        view = memoryview(self.slots)

        def next_result() -> Iterator[Any]:
            future, slot = pending.popleft()
            length, result = future.result()
            if length is not None:
                start = slot * self.slot_bytes
                result = dataclasses.replace(result, data=view[start : start + length])
            yield result
            free.append(slot)  # the caller is done with the result's data

        try:
            for args in tasks:
                if args is None:
                    while pending:
                        yield from next_result()
                    yield None
                    continue
                slot = free.pop()
                pending.append((self.executor.submit(_run, slot, args), slot))
                while pending and (len(pending) >= self.in_flight or pending[0][0].done()):
                    yield from next_result()
            while pending:
                yield from next_result()
        except BrokenProcessPool:
            raise PbatchError("a scoring worker process died (killed or out of memory)") from None
        finally:
            # tasks handed out and never collected (the caller stopped early, or one
            # failed): the next map_ordered gives their slots to new tasks, so none of
            # them may still be running and write into a slot then
            for future, _ in pending:
                future.cancel()
            wait([future for future, _ in pending])

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        try:
            self.slots.close()
        except BufferError:  # a result's view is still held: unmapped when it is dropped
            pass

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

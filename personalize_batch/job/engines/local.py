"""The local engine: each input in turn, its chunks answered on this machine's worker
processes (or in this process), written in order to an atomic output; with a
checkpoint, progress is saved after each chunk and a failed job's state continued."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from typing import Any

from ... import storage
from ...solution import Solution
from .. import checkpoint, signals
from ..answering import LineOptions, answer_stream_guarded
from ..counts import Counts
from ..params import CHUNK_ANSWERS, JobParams
from ..resume import resumed_output
from ..scoring import Answerer
from ..workers import ChunkResult, WorkerPool, default_workers

# a worker process is sent this many chunks' lines at a time when the input is all there
# (a file, an S3 object): one task of 1,024 cheap lines (popularity-count) cost about as
# much to hand over as to answer. A pipe's lines go out 1,024 at a time, so a slow
# writer's lines are answered as they come.
TASK_CHUNKS = 4


def run(
    p: JobParams,
    solution: Solution,
    refs: list[storage.InputRef],
    output: str,
    counts: Counts,
    outputs: list[str],
    tick: Callable[[], None],
    ckpt: checkpoint.Checkpointer | None = None,
) -> dict[str, Any]:
    """The local engine: each input in turn, its chunks on this machine's worker
    processes; returns the record fields that describe the engine. With a checkpoint,
    progress is saved after each chunk and a failed job's state is continued."""
    answerer = Answerer.for_options(solution, p.answer_options())
    workers = p.workers or default_workers()
    pool = None
    if workers > 1:
        # a signal inside fork's at-fork hooks would be swallowed
        with signals.held():
            pool = WorkerPool(functools.partial(_with, answerer), workers)
    try:
        with contextlib.ExitStack() as stack:
            errors_out = None
            if p.errors_to:
                errors_out = stack.enter_context(
                    signals.guarded_output(storage.target_for(p.errors_to, p.endpoint_url))
                )
            state = ckpt.state if ckpt is not None else {"done": [], "current": None}
            for index, ref in enumerate(refs):
                url = storage.output_url(output, ref.name, p.compress)
                if index < len(state["done"]):  # committed before a resume
                    outputs.append(url)
                    continue
                options = LineOptions(p.skip_errors, errors_out is not None, ref.name)
                cur = (
                    state["current"]
                    if state["current"] and state["current"]["index"] == index
                    else None
                )
                target = storage.target_for(url, p.endpoint_url)
                output_args: dict[str, Any] = {}
                resume_args: dict[str, Any] = {}
                if ckpt is not None:
                    target, output_args, resume_args = resumed_output(
                        ckpt, index, cur, counts, url, p.endpoint_url
                    )
                stream = storage.open_input(ref.url, p.endpoint_url)
                try:
                    with signals.guarded_output(
                        target,
                        p.compress_level,
                        committed=functools.partial(_committed, url, outputs, counts, ckpt),
                        **output_args,
                    ) as out:
                        answer_stream_guarded(
                            ref.url,
                            counts,
                            stream=stream,
                            out=out,
                            answerer=answerer,
                            chunk_lines=_task_lines(p, pool, ref.url),
                            pauses=True,
                            tick=tick,
                            pool=pool,
                            options=options,
                            errors_out=errors_out,
                            max_error_rate=p.max_error_rate,
                            **resume_args,
                        )
                finally:
                    if stream is not sys.stdin.buffer:
                        stream.close()
    finally:
        if pool is not None:
            pool.close()
    return {"workers": workers}


def _with(answerer: Answerer, task: Callable[..., ChunkResult], *args: Any) -> ChunkResult:
    """A worker's task: answer_chunk or answer_block, with the answerer it forked with."""
    return task(answerer, *args)


def _task_lines(p: JobParams, pool: WorkerPool | None, url: str) -> int:
    """Lines per task: larger ones for worker processes when the input is all there,
    within the answers a chunk may hold (JobParams.lines_per_chunk)."""
    lines = p.lines_per_chunk()
    if pool is not None and storage.is_complete(url) and lines == p.chunk_lines:
        return max(1, min(lines * TASK_CHUNKS, CHUNK_ANSWERS // p.results()))
    return lines


def _committed(
    url: str, outputs: list[str], counts: Counts, ckpt: checkpoint.Checkpointer | None
) -> None:
    """An input's output is committed: the record and the checkpoint say so."""
    outputs.append(url)
    if ckpt is not None:
        ckpt.finish(url, counts)

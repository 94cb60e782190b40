"""The same batch inference job on a Dask cluster, byte for byte (A.14).

The driver (the `pbatch run` process) lists the inputs and splits each into byte-range
partitions (`job.framing.iter_partition_lines`; a compressed input is one partition), then submits
one task per partition. A worker loads the solution once (cached in its process, keyed by
path and sha256), scores its partition with `batch.answer_guarded` – the local engine's
own code, so the bytes are the same – and writes them to a part (`engines.parts`). When
all parts of an input are written, the driver joins them in order into `NAME.out`.

A task that raises is retried (`retries=`); a task whose worker dies is rescheduled by
Dask (`distributed.scheduler.allowed-failures`). Past that the job fails: no output
appears for the unfinished inputs and their parts are removed.

`distributed` is an optional dependency: `pip install 'personalize-batch[dask]'`.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ... import storage
from ...errors import PbatchError, SolutionError
from ...solution import Solution, load
from ...version import __version__
from ..answering import answer_guarded
from ..counts import Counts
from ..params import AnswerOptions, JobParams
from ..scoring import Answerer
from ..workers import default_workers
from .parts import MAX_PARTS, Staging

if TYPE_CHECKING:
    from distributed import Client, Future

RETRIES = 3  # retries of a partition that raised, and deaths of workers running one
WORKERS_TIMEOUT = 120  # seconds to wait for a scheduler's first worker
DRAIN_TIMEOUT = 60  # seconds to wait for cancelled partitions still running
CONNECT_SECONDS = 5  # a scheduler that does not accept a connection in this long is down
REPORT_EVERY = 1.0  # seconds between progress updates of the job record
KEEP_SOLUTIONS = 2  # solutions a worker process keeps loaded
INSTALL_HINT = "pip install 'personalize-batch[dask]'"


class ClusterError(PbatchError):
    """The cluster could not run the job: unreachable, unsuited, or a partition that
    kept failing."""


def require() -> None:
    """Fail with one clear message when the dask extra is not installed."""
    try:
        import distributed  # noqa: F401, PLC0415
    except ImportError:
        raise PbatchError(f"--engine dask needs the dask extra: {INSTALL_HINT}") from None


@dataclass(frozen=True)
class Partition:
    """One task: the byte range [start, end) of an input (end None: to its end)."""

    index: int
    input: str
    start: int
    end: int | None
    part: str
    solution: str
    sha256: str
    options: AnswerOptions  # the job's, as every partition answers its lines
    endpoint_url: str | None
    chunk_lines: int
    events: str | None = None  # fresh events, folded in on the worker (foldin.py)
    events_sha256: str | None = None


@dataclass(frozen=True)
class PartResult:
    """What a worker wrote for a partition, and what it counted."""

    index: int
    part: str
    size: int
    counts: Counts = field(default_factory=Counts)


def plan_ranges(size: int, partition_size: int, compressed: bool) -> list[tuple[int, int | None]]:
    """The byte ranges of an input of `size` bytes; at most MAX_PARTS, so that the parts
    fit one S3 multipart upload."""
    if compressed or size <= partition_size:
        return [(0, None)]
    n = min(math.ceil(size / partition_size), MAX_PARTS)
    step = math.ceil(size / n)
    return [(k * step, (k + 1) * step if k < n - 1 else None) for k in range(n)]


# --- the worker side ------------------------------------------------------------------

_LOCK = threading.Lock()
_SOLUTIONS: OrderedDict[tuple[str, str], Solution] = OrderedDict()
_LOADS: Counter[str] = Counter()
_LOAD_SECONDS: dict[str, float] = {}
_THREAD = threading.local()


def _answerer(task: Partition) -> Answerer:
    """This process's Answerer for the task's solution: loaded on first use, then kept."""
    key = (task.solution, task.sha256, task.events, task.events_sha256)
    with _LOCK:
        solution = _SOLUTIONS.get(key)
        if solution is None:
            started = time.perf_counter()
            solution = load(task.solution, task.endpoint_url)
            if solution.sha256 != task.sha256:
                raise SolutionError(
                    f"{task.solution} changed after the job started (sha256 {solution.sha256}"
                    f" on a worker, {task.sha256} when the job started); run the job again"
                )
            if task.events is not None:
                from ..foldin import fold_in  # noqa: PLC0415  (scipy: only jobs with fresh events)

                solution, fold = fold_in(solution, task.events, task.endpoint_url)
                if fold["eventsSha256"] != task.events_sha256:
                    raise SolutionError(
                        f"{task.events} changed after the job started; run the job again"
                    )
            _LOADS[task.solution] += 1
            _LOAD_SECONDS[task.solution] = time.perf_counter() - started
            _SOLUTIONS[key] = solution
            while len(_SOLUTIONS) > KEEP_SOLUTIONS:
                _SOLUTIONS.popitem(last=False)
        _SOLUTIONS.move_to_end(key)
    want = (key, task.options)
    cached = getattr(_THREAD, "answerer", None)  # Answerer counts: one per thread
    if cached is None or cached[0] != want:
        answerer = Answerer.for_options(solution, task.options)
        cached = (want, answerer)
        _THREAD.answerer = cached
    return cached[1]


def solution_loads() -> dict[str, tuple[int, float]]:
    """In a worker: how often each solution was loaded, and the last load's seconds."""
    return {path: (n, _LOAD_SECONDS[path]) for path, n in _LOADS.items()}


def worker_version() -> str:
    """In a worker: the pbatch version it runs."""
    return __version__


def score_partition(task: Partition) -> PartResult:
    """In a worker: score one partition into a part of its own (whole or not at all)."""
    answerer = _answerer(task)
    counts = Counts()
    part = f"{task.part}-{secrets.token_hex(4)}"
    label = f"{task.input} (bytes {task.start}-{'end' if task.end is None else task.end})"
    stream = storage.open_input(task.input, task.endpoint_url)
    try:
        target = storage.target_for(part, task.endpoint_url, durable=False)
        with storage.AtomicOutput(target) as out:
            size = answer_guarded(
                stream,
                out,
                answerer,
                counts,
                task.chunk_lines,
                None,
                label,
                start=task.start,
                end=task.end,
            )
    finally:
        stream.close()
    return PartResult(task.index, part, size, counts)


def _executing(prefix: str, dask_worker: Any = None) -> list[str]:
    """In a worker: the keys starting with `prefix` that still run (cancelled or not)."""
    return [ts.key for ts in dask_worker.state.executing if str(ts.key).startswith(prefix)]


# --- the driver side ------------------------------------------------------------------


@dataclass
class _Input:
    """One input of the job: its output, staging folder and partitions."""

    ref: storage.InputRef
    url: str
    staging: Staging
    indices: list[int]
    waiting: int = 0  # partitions not finished yet
    joined: bool = False


def start_local_cluster(workers: int) -> tuple[Any, Client]:
    """A LocalCluster of `workers` one-thread processes, every port on 127.0.0.1, and
    its client."""
    import dask  # noqa: PLC0415
    from distributed import Client, LocalCluster  # noqa: PLC0415

    config = {
        "distributed.scheduler.allowed-failures": RETRIES,
        # Dask's nannies give workers MALLOC_TRIM_THRESHOLD_=65536, which also freezes
        # glibc's mmap threshold: every chunk's arrays were mmapped and faulted in anew,
        # and scoring took 1.7x the CPU time (benchmarks/scale_out.py). The workers set
        # their own thresholds instead, as `pbatch run` does (dask_preload).
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        "distributed.worker.preload": [f"{__package__}.dask_preload"],
        # Dask's statistical profiler samples the task's stack every 10 ms for the
        # dashboard, which nobody watches here: 9% of a popularity-count partition's CPU
        "distributed.worker.profile.enabled": False,
    }
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # None would still bind 8787
            silence_logs=logging.ERROR,
        )
    return cluster, Client(cluster, set_as_default=False)


def reach(address: str, seconds: float = CONNECT_SECONDS) -> None:
    """Refuse a scheduler address that accepts no TCP connection within `seconds`. Dask's
    client retries a refused connection until its connect timeout (30 s), so a wrong
    address or a scheduler that is down took half a minute to say so."""
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp", "tls", "ws", "wss"):
        return  # ucx and others: Dask's own timeout
    host, _, port = rest.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except ValueError:
        raise ClusterError(f"--scheduler takes tcp://HOST:PORT, not {address!r}") from None
    except OSError as exc:
        if isinstance(exc, ConnectionRefusedError):
            why = "connection refused (is the scheduler running, on this port?)"
        elif isinstance(exc, TimeoutError):
            why = f"no answer within {seconds:g} s"
        else:
            why = exc.strerror or str(exc)
        raise ClusterError(f"cannot reach the Dask scheduler {address}: {why}") from None


def _connect(p: JobParams) -> tuple[Client, Callable[[], None], str]:
    """A client of the given scheduler, or of a new LocalCluster on 127.0.0.1."""
    from distributed import Client  # noqa: PLC0415

    if p.scheduler is not None:
        reach(p.scheduler)
        try:
            # the handshake gives up after distributed.comm.timeouts.connect (30 s)
            client = Client(p.scheduler, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler {p.scheduler}: {exc}") from None
        except Exception as exc:  # something answered, but not as a Dask scheduler
            raise ClusterError(
                f"{p.scheduler} did not answer as a Dask scheduler ({type(exc).__name__})"
            ) from None
        return client, client.close, p.scheduler
    n = p.workers or default_workers()
    cluster, client = start_local_cluster(n)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close, f"LocalCluster({n} workers)"


def _check_workers(client: Client) -> int:
    """The number of workers, once there is one and all run this pbatch version."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
        versions = client.run(worker_version)
    except TimeoutError:
        raise ClusterError(f"no Dask worker joined within {WORKERS_TIMEOUT} s") from None
    except ImportError as exc:
        raise ClusterError(
            f"a Dask worker cannot import pbatch ({exc}); install pbatch {__version__} "
            "on every worker"
        ) from None
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        raise ClusterError(
            f"Dask workers run another pbatch version than this {__version__}: {wrong}"
        )
    return len(versions)


def _failure(future: Future, task: Partition) -> PbatchError:
    """The job's failure for a partition that did not finish."""
    from distributed.scheduler import KilledWorker  # noqa: PLC0415

    label = f"partition {task.index} ({task.input}, bytes {task.start}-{task.end or 'end'})"
    if future.status != "error":
        return ClusterError(f"{label} was {future.status} (lost contact with the cluster?)")
    exc = future.exception()
    if isinstance(exc, KilledWorker):
        died = exc.allowed_failures + 1
        return ClusterError(f"{label}: the workers running it died {died} times")
    if isinstance(exc, PbatchError):
        return ClusterError(f"{exc} (after {RETRIES} retries)")
    return ClusterError(f"{label} failed after {RETRIES} retries: {type(exc).__name__}: {exc}")


def _drain(client: Client, prefix: str) -> None:
    """Wait until no worker still runs a cancelled partition (it could write a part after
    the parts were removed)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            running = client.run(_executing, prefix)
        except (OSError, TimeoutError):
            return  # the cluster is gone, and its workers with it
        if not any(running.values()):
            return
        time.sleep(0.2)


def _plan(
    p: JobParams, name: str, refs: list[storage.InputRef], output: str, solution: Solution
) -> tuple[list[_Input], list[Partition]]:
    """Every input's output, staging folder and partitions."""
    solution_ref = p.solution if storage.is_s3(p.solution) else os.path.abspath(p.solution)
    inputs, tasks = [], []
    for ref in refs:
        url = storage.output_url(output, ref.name, p.compress)
        source = ref.url if storage.is_s3(ref.url) else os.path.abspath(ref.url)
        staging = Staging(url, name, p.endpoint_url)
        size = storage.input_size(source, p.endpoint_url)
        ranges = plan_ranges(size, p.partition_size, storage.is_compressed(source))
        first = len(tasks)
        for start, end in ranges:
            index = len(tasks)
            tasks.append(
                Partition(
                    index=index,
                    input=source,
                    start=start,
                    end=end,
                    part=staging.part_url(index - first),
                    solution=solution_ref,
                    sha256=solution.sha256,
                    options=p.answer_options(),
                    endpoint_url=p.endpoint_url,
                    chunk_lines=p.lines_per_chunk(),
                    events=storage.display_path(p.events) if p.events else None,
                    events_sha256=solution.meta.get("foldIn", {}).get("eventsSha256"),
                )
            )
        indices = list(range(first, len(tasks)))
        inputs.append(_Input(ref, url, staging, indices, waiting=len(indices)))
    return inputs, tasks


def run(
    p: JobParams,
    name: str,
    solution: Solution,
    refs: list[storage.InputRef],
    output: str,
    counts: Counts,
    outputs: list[str],
    tick: Callable[[], None],
    report: Callable[..., Any],
) -> dict[str, Any]:
    """Run the job's partitions on Dask and join each input's parts into its output, in
    input order; returns the record fields that describe the engine."""
    from distributed import as_completed  # noqa: PLC0415

    inputs, tasks = _plan(p, name, refs, output, solution)
    client, close, where = _connect(p)
    prefix = f"pbatch-{name}-{secrets.token_hex(3)}-"
    futures: list[Future] = []
    closed = False
    try:
        engine = {
            "engine": "dask",
            "scheduler": where,
            "workers": _check_workers(client),
            "partitionSize": p.partition_size,
            "partitions": len(tasks),
            "partitionsDone": 0,
        }
        report(**engine)
        futures = client.map(
            score_partition,
            tasks,
            key=[f"{prefix}{t.index:06d}" for t in tasks],
            retries=RETRIES,
            pure=False,
        )
        index_of = {f.key: t.index for f, t in zip(futures, tasks, strict=True)}
        input_of = {i: item for item in inputs for i in item.indices}
        results: dict[int, PartResult] = {}
        to_join = iter(inputs)
        next_input = next(to_join, None)
        last_report = time.monotonic()
        for future in as_completed(futures, loop=client.loop):
            k = index_of[future.key]
            if future.status != "finished":
                raise _failure(future, tasks[k])
            results[k] = future.result()
            # the scheduler may forget it now: otherwise a worker lost later, holding
            # this result, makes it compute the partition again, and that attempt
            # writes a part after the staging folder is removed
            future.release()
            counts.merge(results[k].counts)
            input_of[k].waiting -= 1
            engine["partitionsDone"] = len(results)
            tick()
            while next_input is not None and next_input.waiting == 0:  # in input order
                parts = [(results[i].part, results[i].size) for i in next_input.indices]
                next_input.staging.join(parts, p.compress_level)
                next_input.joined = True
                outputs.append(next_input.url)
                next_input.staging.remove()
                next_input = next(to_join, None)
            if time.monotonic() - last_report >= REPORT_EVERY:
                last_report = time.monotonic()
                report(**engine, **counts.as_record())
        return engine
    except BaseException:
        client.cancel(futures, force=True)
        if p.scheduler is not None:
            _drain(client, prefix)
        close()  # a LocalCluster's workers stop here, so none writes a part after this
        closed = True
        for item in inputs:
            if not item.joined:
                try:
                    item.staging.remove()
                except PbatchError:
                    pass  # the job's own failure is the one to report; parts stay hidden
        raise
    finally:
        if not closed:
            close()

"""Shared helpers for the benchmarks: timing a pbatch run with its peak RSS, running a
function in a forked child that reports its peak RSS, the datasets, and writing a
section of BENCHMARKS.md."""

from __future__ import annotations

import csv
import gzip
import multiprocessing as mp
import os
import platform
import re
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "datasets"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
PBATCH = [sys.executable, "-m", "personalize_batch.cli"]


def compile_package() -> None:
    """Write the bytecode of pbatch's modules, as installing a package does, so that
    every timed `pbatch` reads it. A checkout that never ran, or an environment with
    PYTHONDONTWRITEBYTECODE set, would have each run compile them from source again:
    about 0.05 s of every start-up here, which an installed pbatch does not pay."""
    import compileall  # noqa: PLC0415

    if not compileall.compile_dir(ROOT / "personalize_batch", quiet=1):
        raise RuntimeError("could not compile personalize_batch")


# run a command, print its wall time and the peak RSS of its largest process (KiB)
_MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "dt = time.perf_counter() - t; "
    "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(0 if p.returncode in (0, 3) else p.returncode)"
)


def run_measured(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in MiB of it and its children)."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr[-2000:]}")
    seconds, kib = proc.stdout.split()
    return float(seconds), int(kib) / 1024


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass  # ended meanwhile
    return out


def _pss_mb(pid: int) -> float:
    """A process's proportional set size: its private pages plus its share of pages it
    shares (the solution's arrays after fork count once over all workers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# Reading a process's smaps_rollup walks its page tables under its memory-map lock. At
# one sample every 50 ms, a two-worker user-personalization job on the synthetic
# solution took 7.6-8.0 s against 6.1-6.3 s at one a second, its one-worker run about
# the same: the sampling itself was most of the speed-up it seemed to lack. A streamed
# job's memory is flat after start-up, and both found the same peak (587-594 MiB).
SAMPLE_SECONDS = 1.0


def run_sampled(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """run_measured, also sampling every SAMPLE_SECONDS the summed PSS of the command and
    its children: (wall seconds, peak RSS MiB of its largest process, peak summed PSS
    MiB)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    total = 0.0
    while proc.poll() is None:
        tree = _tree(proc.pid)[1:]  # not the measuring process itself
        total = max(total, sum(_pss_mb(p) for p in tree))
        try:
            proc.wait(SAMPLE_SECONDS)  # ends the sleep when the command ends
        except subprocess.TimeoutExpired:
            pass
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {err[-2000:]}")
    seconds, kib = out.split()
    return float(seconds), int(kib) / 1024, total


def rss_mb() -> float:
    """The current resident set size of this process, in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far, in MB (Linux: KB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    try:
        start_rss = rss_mb()
        result = fn(*args)
        conn.send(("ok", result, start_rss, peak_rss_mb()))
    except BaseException:  # noqa: BLE001  (the parent re-raises it with the traceback)
        conn.send(("error", traceback.format_exc(), 0.0, 0.0))
    finally:
        conn.close()


def in_child(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Run fn(*args) in a forked child: (its result, RSS at the start, peak RSS) in MB.

    A fork shares the parent's pages, so the start RSS is the baseline the parent
    brought along (data, splits); the peak includes it.
    """
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args))
    proc.start()
    child.close()
    status, result, start, peak = parent.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"child failed:\n{result}")
    return result, start, peak


class Timer:
    """`with Timer() as t: ...` then t.seconds."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def read_rows(name: str) -> tuple[list[str], list[list[str]]]:
    """A bundled dataset's interactions as (header, rows of strings)."""
    with gzip.open(DATA / name / "interactions.csv.gz", "rt", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(reader)


def machine() -> str:
    """One line describing where the numbers were measured."""
    import numpy as np  # noqa: PLC0415

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}{_cpu_model()}, {cores} cores, {mem:.0f} GiB, Python "
        f"{platform.python_version()}, numpy {np.__version__}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}{commit()}"
    )


def _cpu_model() -> str:
    """' (MODEL)' as /proc/cpuinfo names the processor; '' where it does not. The same
    virtual machine size runs on different hosts, and the rates follow the processor."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return f" ({value.strip()})"
    except OSError:
        pass
    return ""


def commit() -> str:
    """The pbatch commit measured, as ', pbatch COMMIT[-dirty]'; '' outside a git checkout.
    Dirty means changed tracked files other than the reports the benchmarks write (a run
    that writes two sections would otherwise call the second one's code dirty)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        described = git("describe", "--always")
        changed = git(
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!BENCHMARKS.md",
            ":!RELIABILITY.md",
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    if not described:
        return ""
    return f", pbatch {described}{'-dirty' if changed else ''}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between <!-- name:start --> and <!-- name:end -->."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = (
        BENCHMARKS_MD.read_text(encoding="utf-8")
        if BENCHMARKS_MD.exists()
        else (
            "# pbatch benchmarks\n\nEvery table below is written by the script named in its "
            "section; rerun the script to refresh it.\n"
        )
    )
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + block + "\n")
    )
    BENCHMARKS_MD.write_text(text, encoding="utf-8")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

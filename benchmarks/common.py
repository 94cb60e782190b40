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
DATA = ROOT.parent / "shared" / "data"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
PBATCH = [sys.executable, "-m", "personalize_batch.cli"]


def run_measured(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in MiB of it and its children)."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:]); dt = time.perf_counter() - t; "
        "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(0 if p.returncode in (0, 3) else p.returncode)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr[-2000:]}")
    seconds, kib = proc.stdout.split()
    return float(seconds), int(kib) / 1024


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
        f"{platform.machine()}, {cores} cores, {mem:.0f} GiB, Python "
        f"{platform.python_version()}, numpy {np.__version__}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}"
    )


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

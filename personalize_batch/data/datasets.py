"""Personalize dataset CSVs -> id maps and integer arrays (A.12).

Interactions: header required (names case-insensitive); USER_ID, ITEM_ID and TIMESTAMP
(unix seconds) as Personalize requires, EVENT_TYPE and EVENT_VALUE optional. Without a
TIMESTAMP column each user's rows are taken in file order (with a warning). Ids stay
strings. A malformed row stops with the file, line number and reason.

Files are UTF-8. A file that is UTF-16 or UTF-32, compressed without its `.gz`
extension, or a zip (a solution given as a CSV) is refused before its first row, naming
what it is; a byte that is not UTF-8 stops reading with the line that holds it.
A TIMESTAMP whose magnitude is 10^11 or more is not unix seconds (that would be the
year 5138; in milliseconds it is any date after March 1973): it is refused with its
line, rather than read as a date millennia away, which made the item the most recent
of every history.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import hashlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, StorageError
from ..storage import open_input

if TYPE_CHECKING:
    import scipy.sparse as sp

MAX_ID_LENGTH = 256
# |TIMESTAMP| from here on is not unix seconds: milliseconds (or finer) since 1970
MAX_SECONDS = 10**11
# what a file that is not UTF-8 text starts with -> what it is
SIGNATURES = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (it starts with a UTF-32 byte-order mark)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (it starts with a UTF-32 byte-order mark)"),
    (b"\xff\xfe", "UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    (b"\xfe\xff", "UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    (b"\x1f\x8b", "gzip-compressed, but its name does not end in .gz"),
    (b"PK\x03\x04", "a zip file (a pbatch solution?)"),
)


@dataclass
class Interactions:
    """Interactions as integer arrays, sorted by (user, time, file order)."""

    user_ids: np.ndarray  # unicode, index -> USER_ID
    item_ids: np.ndarray  # unicode, index -> ITEM_ID
    users: np.ndarray  # int32 per row
    items: np.ndarray  # int32 per row
    timestamps: np.ndarray  # int64 per row (row order when the file has none)
    event_types: np.ndarray  # unicode per row ("" when the file has none)
    has_timestamps: bool = True
    sha256: str = ""
    source: str = ""
    rows_read: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def matrix(self) -> sp.csr_matrix:
        """The binary user x item matrix (1 where the user interacted with the item)."""
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        m = sp.csr_matrix(
            (np.ones(len(self.users), dtype=np.float32), (self.users, self.items)),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


@dataclass
class Items:
    """The items CSV: ids and metadata columns as strings."""

    item_ids: np.ndarray
    columns: dict[str, np.ndarray]
    sha256: str = ""


class _HashingReader(io.RawIOBase):
    """Wrap a binary stream, feeding every byte read to sha256."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.hash.update(data)
        return n


def not_utf8_text(head: bytes) -> str | None:
    """What a file that starts with `head` is, when it is not UTF-8 text (None: it may
    be). A UTF-16 file without a byte-order mark shows NUL bytes in its first line."""
    for magic, what in SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return "bzip2-compressed, but its name does not end in .bz2"
    if b"\x00" in head.split(b"\n", 1)[0]:
        return "not UTF-8 text: its first line holds NUL bytes (UTF-16 without a byte-order mark?)"
    return None


def _open_csv(path: str, endpoint_url: str | None) -> tuple[_HashingReader, csv.reader, list[str]]:
    raw = open_input(path, endpoint_url)
    hashing = _HashingReader(raw)
    buffered = io.BufferedReader(hashing, 1 << 20)
    try:
        what = not_utf8_text(buffered.peek(4096)[:4096])
    except (OSError, EOFError) as exc:
        raise StorageError(f"{path}: cannot read it: {exc}") from None
    if what is not None:
        raise DataError(f"{path} is {what}; pbatch reads UTF-8 CSV files")
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file (a header row is required)") from None
    except UnicodeDecodeError:
        raise DataError(_bad_byte(path, endpoint_url, 0)) from None
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: {exc}") from None
    return hashing, reader, [h.strip().upper() for h in header]


def _bad_byte(path: str, endpoint_url: str | None, after: int) -> str:
    """The message for a byte that is not UTF-8: the line that holds it, found by reading
    the file again (the decoder met it a buffer ahead of the CSV reader), or the last
    line read when the file cannot be read again (stdin)."""
    if path != "-":
        try:
            stream = open_input(path, endpoint_url)
            try:
                for number, raw in enumerate(stream, 1):
                    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                        raw = raw[3:]
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        byte = raw[exc.start]
                        return (
                            f"{path}: line {number}: byte 0x{byte:02x} at column {exc.start + 1}"
                            " is not UTF-8; pbatch reads UTF-8 CSV files"
                        )
            finally:
                stream.close()
        except (OSError, EOFError, StorageError):
            pass
    return f"{path}: after line {after}: a byte that is not UTF-8; pbatch reads UTF-8 CSV files"


def _read_rows(
    path: str, reader: csv.reader, n_cols: int, handle: Callable, endpoint_url: str | None = None
) -> int:
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != n_cols:
                raise DataError(f"{path}: line {line}: expected {n_cols} fields, found {len(row)}")
            handle(row, line)
    except UnicodeDecodeError:
        raise DataError(_bad_byte(path, endpoint_url, line)) from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: {exc}") from None
    except (OSError, EOFError) as exc:
        raise StorageError(f"{path}: read failed after line {line}: {exc}") from None
    return line


def unix_seconds(raw: str, column: str, path: str, line: int) -> int:
    """A TIMESTAMP-like value as whole unix seconds, or a DataError naming the line: not
    a whole number, or a number too large to be seconds (milliseconds, microseconds…)."""
    try:
        value = int(raw)
    except ValueError:
        raise DataError(
            f"{path}: line {line}: {column} {raw!r} is not whole unix seconds"
        ) from None
    if abs(value) >= MAX_SECONDS:
        # the unit that puts it after 1973, as seconds are: each is 1,000 times the last
        unit, scale = next(
            (u, k)
            for u, k in (("milliseconds", 3), ("microseconds", 6), ("nanoseconds", 9))
            if abs(value) < MAX_SECONDS * 10**k or k == 9
        )
        when = _date(value / 10**scale)
        raise DataError(
            f"{path}: line {line}: {column} {value} is not unix seconds: it looks like "
            f"{unit}{f' ({when})' if when else ''}; Personalize's {column} is whole seconds "
            f"since 1970 (divide by {10**scale:,})"
        )
    return value


def _date(seconds: float) -> str | None:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d UTC")
    except (OverflowError, OSError, ValueError):
        return None


def _check_id(value: str, what: str, path: str, line: int) -> str:
    if not value:
        raise DataError(f"{path}: line {line}: empty {what}")
    if len(value) > MAX_ID_LENGTH:
        raise DataError(f"{path}: line {line}: {what} longer than {MAX_ID_LENGTH} characters")
    return value


def read_interactions(
    path: str,
    *,
    event_type: str | None = None,
    event_value_threshold: float | None = None,
    endpoint_url: str | None = None,
    allow_empty: bool = False,
) -> Interactions:
    """Read an interactions CSV (local, .gz or s3://) into sorted integer arrays.
    `allow_empty`: a file with no (selected) rows is fine (fresh events at run time)."""
    hashing, reader, header = _open_csv(path, endpoint_url)
    for required in ("USER_ID", "ITEM_ID"):
        if required not in header:
            raise DataError(f"{path}: line 1: the header has no {required} column")
    if len(set(header)) != len(header):
        raise DataError(f"{path}: line 1: duplicate column names in the header")
    cu, ci = header.index("USER_ID"), header.index("ITEM_ID")
    ct = header.index("TIMESTAMP") if "TIMESTAMP" in header else None
    ce = header.index("EVENT_TYPE") if "EVENT_TYPE" in header else None
    cv = header.index("EVENT_VALUE") if "EVENT_VALUE" in header else None
    if event_type is not None and ce is None:
        raise DataError(f"{path}: --event-type needs an EVENT_TYPE column")
    if event_value_threshold is not None and cv is None:
        raise DataError(f"{path}: --event-value-threshold needs an EVENT_VALUE column")
    wanted_type = event_type.lower() if event_type is not None else None

    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    types: list[str] = []
    rows = 0
    type_rows: collections.Counter[str] = collections.Counter()  # with --event-type

    def handle(row: list[str], line: int) -> None:
        nonlocal rows
        rows += 1
        u = _check_id(row[cu], "USER_ID", path, line)
        i = _check_id(row[ci], "ITEM_ID", path, line)
        t = unix_seconds(row[ct], "TIMESTAMP", path, line) if ct is not None else 0
        et = row[ce] if ce is not None else ""
        if wanted_type is not None:
            type_rows[et.lower()] += 1
            if et.lower() != wanted_type:
                return
        if event_value_threshold is not None:
            raw = row[cv].strip()
            if not raw:
                return  # no value: below any threshold
            try:
                value = float(raw)
            except ValueError:
                raise DataError(
                    f"{path}: line {line}: EVENT_VALUE {raw!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise DataError(f"{path}: line {line}: EVENT_VALUE {raw!r} is not finite")
            if value < event_value_threshold:
                return
        users.append(u)
        items.append(i)
        times.append(t)
        types.append(et)

    _read_rows(path, reader, len(header), handle, endpoint_url)
    warnings = []
    if ct is None:
        warnings.append(f"{path} has no TIMESTAMP column: each user's rows are taken in file order")
    if not users and not allow_empty:
        raise DataError(_nothing_left(path, rows, event_type, event_value_threshold, type_rows))
    user_ids, u_idx = np.unique(np.array(users, dtype=str), return_inverse=True)
    item_ids, i_idx = np.unique(np.array(items, dtype=str), return_inverse=True)
    ts = (
        np.array(times, dtype=np.int64) if ct is not None else np.arange(len(users), dtype=np.int64)
    )
    order = np.lexsort((np.arange(len(users)), ts, u_idx))
    return Interactions(
        user_ids=user_ids,
        item_ids=item_ids,
        users=u_idx[order].astype(np.int32),
        items=i_idx[order].astype(np.int32),
        timestamps=ts[order],
        event_types=np.array(types, dtype=str)[order],
        has_timestamps=ct is not None,
        sha256=hashing.hash.hexdigest(),
        source=path,
        rows_read=rows,
        warnings=warnings,
    )


def _nothing_left(
    path: str,
    rows: int,
    event_type: str | None,
    threshold: float | None,
    type_rows: collections.Counter[str],
) -> str:
    """Why no interaction is left: the file has none, none of the event type asked for
    (naming the types it has), or none at or above the value threshold."""
    if not rows:
        return f"{path}: no interactions (a header row only)"
    if event_type is not None and not type_rows[event_type.lower()]:
        have = ", ".join(
            f"{t or '(empty)'} ({n:,} rows)"
            for t, n in sorted(type_rows.items(), key=lambda tn: (-tn[1], tn[0]))[:10]
        )
        return (
            f"{path}: no interactions of event type {event_type!r} (matched ignoring case); "
            f"its event types: {have}"
        )
    chosen = (
        f"{type_rows[event_type.lower()]:,} of event type {event_type!r}, " if event_type else ""
    )
    return (
        f"{path}: no interactions left to train on: {rows:,} rows, {chosen}none with "
        f"EVENT_VALUE >= {threshold:g}"
    )


def read_items(path: str, endpoint_url: str | None = None) -> Items:
    """Read an items CSV: ITEM_ID plus metadata columns, all kept as strings
    (`CREATION_TIMESTAMP`, when present, must be whole unix seconds or empty)."""
    hashing, reader, header = _open_csv(path, endpoint_url)
    if "ITEM_ID" not in header:
        raise DataError(f"{path}: line 1: the header has no ITEM_ID column")
    if len(set(header)) != len(header):
        raise DataError(f"{path}: line 1: duplicate column names in the header")
    ci = header.index("ITEM_ID")
    cc = header.index("CREATION_TIMESTAMP") if "CREATION_TIMESTAMP" in header else None
    ids: list[str] = []
    cols: list[list[str]] = [[] for _ in header]
    seen: set[str] = set()

    def handle(row: list[str], line: int) -> None:
        item = _check_id(row[ci], "ITEM_ID", path, line)
        if item in seen:
            raise DataError(f"{path}: line {line}: ITEM_ID {item!r} appears twice")
        if cc is not None and row[cc].strip():
            unix_seconds(row[cc], "CREATION_TIMESTAMP", path, line)
        seen.add(item)
        ids.append(item)
        for k, v in enumerate(row):
            cols[k].append(v)

    _read_rows(path, reader, len(header), handle, endpoint_url)
    columns = {name: np.array(cols[k], dtype=str) for k, name in enumerate(header) if k != ci}
    return Items(
        item_ids=np.array(ids, dtype=str), columns=columns, sha256=hashing.hash.hexdigest()
    )

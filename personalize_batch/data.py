"""Personalize dataset CSVs -> id maps and integer arrays (A.12).

Interactions: header required (names case-insensitive); USER_ID, ITEM_ID and TIMESTAMP
(unix seconds) as Personalize requires, EVENT_TYPE and EVENT_VALUE optional. Without a
TIMESTAMP column each user's rows are taken in file order (with a warning). Ids stay
strings. A malformed row stops with the file, line number and reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError, StorageError
from .io import open_input

if TYPE_CHECKING:
    import scipy.sparse as sp

MAX_ID_LENGTH = 256


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


def _open_csv(path: str, endpoint_url: str | None) -> tuple[_HashingReader, csv.reader, list[str]]:
    raw = open_input(path, endpoint_url)
    hashing = _HashingReader(raw)
    text = io.TextIOWrapper(io.BufferedReader(hashing, 1 << 20), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file (a header row is required)") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: line 1: {exc}") from None
    return hashing, reader, [h.strip().upper() for h in header]


def _read_rows(path: str, reader: csv.reader, n_cols: int, handle: Callable) -> int:
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != n_cols:
                raise DataError(f"{path}: line {line}: expected {n_cols} fields, found {len(row)}")
            handle(row, line)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: after line {line}: not UTF-8 ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: {exc}") from None
    except (OSError, EOFError) as exc:
        raise StorageError(f"{path}: read failed after line {line}: {exc}") from None
    return line


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

    def handle(row: list[str], line: int) -> None:
        nonlocal rows
        rows += 1
        u = _check_id(row[cu], "USER_ID", path, line)
        i = _check_id(row[ci], "ITEM_ID", path, line)
        t = 0
        if ct is not None:
            try:
                t = int(row[ct])
            except ValueError:
                raise DataError(
                    f"{path}: line {line}: TIMESTAMP {row[ct]!r} is not whole unix seconds"
                ) from None
        et = row[ce] if ce is not None else ""
        if wanted_type is not None and et.lower() != wanted_type:
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

    _read_rows(path, reader, len(header), handle)
    warnings = []
    if ct is None:
        warnings.append(f"{path} has no TIMESTAMP column: each user's rows are taken in file order")
    if not users and not allow_empty:
        raise DataError(f"{path}: no interactions left to train on")
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
            try:
                int(row[cc])
            except ValueError:
                raise DataError(
                    f"{path}: line {line}: CREATION_TIMESTAMP {row[cc]!r} is not whole unix seconds"
                ) from None
        seen.add(item)
        ids.append(item)
        for k, v in enumerate(row):
            cols[k].append(v)

    _read_rows(path, reader, len(header), handle)
    columns = {name: np.array(cols[k], dtype=str) for k, name in enumerate(header) if k != ci}
    return Items(
        item_ids=np.array(ids, dtype=str), columns=columns, sha256=hashing.hash.hexdigest()
    )

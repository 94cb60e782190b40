"""`pbatch diff OLD.out NEW.out`: what changed between two runs, line by line, so that
only users whose recommendations moved need to be sent again.

Lines are matched by their `input` object (keys sorted), so the two runs may have
different inputs; an input answered several times is matched in order of appearance.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from . import storage
from .errors import PbatchError


@dataclass
class DiffSummary:
    """Counts of what changed."""

    old_lines: int = 0
    new_lines: int = 0
    unchanged: int = 0
    changed: int = 0
    only_in_old: int = 0
    only_in_new: int = 0
    items_added: int = 0
    items_removed: int = 0
    rank_shifts: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        shifts = self.rank_shifts
        return {
            "oldLines": self.old_lines,
            "newLines": self.new_lines,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "onlyInOld": self.only_in_old,
            "onlyInNew": self.only_in_new,
            "itemsAdded": self.items_added,
            "itemsRemoved": self.items_removed,
            "itemsMoved": sum(1 for s in shifts if s),
            "meanAbsoluteRankShift": round(sum(abs(s) for s in shifts) / len(shifts), 4)
            if shifts
            else 0.0,
        }


def _lines(path: str, endpoint_url: str | None) -> Iterator[tuple[bytes, bytes, list[str]]]:
    """(key, raw line, recommendedItems) per line of a .out file, streamed."""
    stream = storage.open_input(path, endpoint_url)
    try:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
                key = orjson.dumps(rec["input"], option=orjson.OPT_SORT_KEYS)
                items = (rec.get("output") or {}).get("recommendedItems") or []
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise PbatchError(f"{path}:{number}: not a pbatch output line") from None
            yield key, raw if raw.endswith(b"\n") else raw + b"\n", items
    finally:
        if path != "-":
            stream.close()


def diff(
    old: str, new: str, changed_out: IO[bytes] | None = None, endpoint_url: str | None = None
) -> DiffSummary:
    """Compare two outputs; write the NEW lines that changed (or are new) to changed_out.
    OLD's lists are held in memory; NEW is streamed."""
    summary = DiffSummary()
    by_key: dict[bytes, deque[list[str]]] = defaultdict(deque)
    for key, _, items in _lines(old, endpoint_url):
        summary.old_lines += 1
        by_key[key].append(items)
    for key, raw, items in _lines(new, endpoint_url):
        summary.new_lines += 1
        if not by_key.get(key):
            summary.only_in_new += 1
            summary.items_added += len(items)
            if changed_out is not None:
                changed_out.write(raw)
            continue
        before = by_key[key].popleft()
        if before == items:
            summary.unchanged += 1
            continue
        summary.changed += 1
        was = {item: rank for rank, item in enumerate(before)}
        summary.items_added += sum(1 for i in items if i not in was)
        now = set(items)
        summary.items_removed += sum(1 for i in before if i not in now)
        summary.rank_shifts += [rank - was[i] for rank, i in enumerate(items) if i in was]
        if changed_out is not None:
            changed_out.write(raw)
    summary.only_in_old = sum(len(q) for q in by_key.values())
    return summary

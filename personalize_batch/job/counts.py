"""What a job counted: lines read, answered, in error and blank, and the ids the
solution did not know. Its record and exit code are made from these."""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import IdTally
from .workers import ChunkResult


@dataclass
class Counts:
    """What a job did, for its record and its exit code."""

    read: int = 0
    answered: int = 0
    errors: int = 0
    blank: int = 0

    ids_not_strings: int = 0
    lists_ignored: int = 0
    ids: IdTally = field(default_factory=IdTally)

    def add(self, result: ChunkResult) -> None:
        """Count what one answered chunk did."""
        self.read += result.read  # counted by a worker (answer_block)
        self.blank += result.blank
        self.answered += result.answered
        self.errors += result.errors
        self.ids_not_strings += result.ids_not_strings
        self.lists_ignored += result.lists_ignored
        self.ids.add(result.ids)

    def merge(self, other: Counts) -> None:
        """Add another reader's counts (a Dask partition's) to these."""
        for name in ("read", "answered", "errors", "blank", "ids_not_strings", "lists_ignored"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ids.merge(other.ids)

    def as_record(self) -> dict[str, int]:
        return {
            "unknownUsers": self.ids.unknown_users,
            "unknownItems": self.ids.unknown_items,
            "linesRead": self.read,
            "linesAnswered": self.answered,
            "linesWithErrors": self.errors,
            "blankLinesSkipped": self.blank,
        }

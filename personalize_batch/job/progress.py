"""A running job's progress: lines per second and errors on stderr, and its counts in
its record so that `describe` shows the lines done."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from .counts import Counts

PROGRESS_SECONDS = 2.0  # how often a running job writes its counts to its record


class Progress:
    """Lines/s and errors so far on stderr, at most a few times a second; and every
    PROGRESS_SECONDS the counts into the job's record, so `describe` shows lines done."""

    def __init__(
        self, counts: Counts, enabled: bool, record: Callable[[], None] | None = None
    ) -> None:
        self.counts, self.enabled, self.record = counts, enabled, record
        self.start = self.last = self.recorded = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if self.record is not None and now - self.recorded >= PROGRESS_SECONDS:
            self.recorded = now
            self.record()
        if not self.enabled or now - self.last < 0.5:
            return
        self.last = now
        rate = self.counts.read / max(now - self.start, 1e-9)
        sys.stderr.write(
            f"\r{self.counts.read:,} lines, {rate:,.0f} lines/s, {self.counts.errors:,} errors"
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last != self.start:
            sys.stderr.write("\n")

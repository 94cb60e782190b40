"""The users a segment job's line may name under a filter: Personalize's INCLUDE and
EXCLUDE UserID expressions over the users' interactions with the line's items (B.3:
`EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("purchase")` leaves out the users who
already bought the item). `filters/` builds a UserFilter from a parsed filter and each
line's filterValues; the segment scorer asks it, block of users by block of users, which
of them each line includes and excludes, so memory stays one block x lines.

A condition is, per line, the event types it matches (a lines x types bool array): a
user meets it for a line when they interacted with one of the line's items (an
attribute line's matching items) under one of those types, among the interactions
the solution keeps for filters (each user's most recent per event type). A line for
which an EXCLUDE expression is skipped (a placeholder without a value) has no type in
it, so the expression matches no user there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .catalogue import Events

if TYPE_CHECKING:
    import scipy.sparse as sp

# an expression: an OR of ANDs of conditions, each a lines x event types bool array
Expression = tuple[tuple[np.ndarray, ...], ...]


@dataclass(frozen=True)
class UserFilter:
    """INCLUDE and EXCLUDE UserID expressions for the lines of one call, in order."""

    events: Events
    includes: tuple[Expression, ...]
    excludes: tuple[Expression, ...]

    def lines(self, cols: np.ndarray) -> UserFilter:
        """The filter of lines `cols` (indices into this one's lines), in that order."""

        def pick(exprs: tuple[Expression, ...]) -> tuple[Expression, ...]:
            return tuple(tuple(tuple(c[cols] for c in conj) for conj in e) for e in exprs)

        return UserFilter(self.events, pick(self.includes), pick(self.excludes))

    def bind(self, q: sp.csr_matrix) -> BoundFilter:
        """The filter for the lines of q (items x lines: 1 at each line's items)."""
        q = q.tocsr()

        def prepare(exprs: tuple[Expression, ...]):
            return tuple(
                tuple(tuple(_per_type(q, types) for types in conj) for conj in e) for e in exprs
            )

        return BoundFilter(self.events, q.shape[1], prepare(self.includes), prepare(self.excludes))


def _per_type(q: sp.csr_matrix, types: np.ndarray) -> list[tuple[int, sp.csr_matrix]]:
    """(event type, q with only the columns of the lines that match that type)."""
    import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

    out = []
    for t in np.flatnonzero(types.any(axis=0)).tolist():
        out.append((t, (q @ sp.diags(types[:, t].astype(np.float64))).tocsr()))
    return out


class BoundFilter:
    """A UserFilter bound to its lines' items: which users of a block each line includes
    and excludes."""

    def __init__(self, events: Events, n_lines: int, includes, excludes) -> None:
        self.events, self.n_lines = events, n_lines
        self.includes, self.excludes = includes, excludes

    @property
    def has_includes(self) -> bool:
        return bool(self.includes)

    def _condition(self, parts, start: int, stop: int) -> sp.csr_matrix:
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        out = sp.csr_matrix((stop - start, self.n_lines))
        for t, qt in parts:
            out = out + self.events.span(t, start, stop) @ qt
        return out

    def _union(self, exprs, start: int, stop: int) -> sp.csr_matrix:
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        out = sp.csr_matrix((stop - start, self.n_lines))
        for expr in exprs:
            for conj in expr:
                part = None
                for cond in conj:
                    m = self._condition(cond, start, stop)
                    part = m if part is None else part.multiply(m).tocsr()
                out = out + part
        out.eliminate_zeros()
        return out

    def matches(self, start: int, stop: int) -> tuple[sp.csr_matrix | None, sp.csr_matrix]:
        """For users start..stop: (included, excluded) as users x lines matrices whose
        entries mark a match; included is None without INCLUDE expressions."""
        included = self._union(self.includes, start, stop) if self.includes else None
        return included, self._union(self.excludes, start, stop)

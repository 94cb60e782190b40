"""What filters can see (B.3): the item fields of the items CSV kept in the solution, and
per event type each user's most recent interacted items.

Item fields are stored as strings (`items_<FIELD>`); filters read them two ways, built
on first use: categorical (values split on `|`, matched exactly) and numeric (a value
that is not a finite number is missing). Interactions are kept per (event type, user) as
one CSR matrix of (types x users) rows, event types lower-cased because event-type
matching is Personalize's one case-insensitive match.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .numeric import csr_rows, latest_distinct

if TYPE_CHECKING:
    import scipy.sparse as sp

DEFAULT_HISTORY = (
    100  # Personalize: "up to 100 of the most recent interactions per user per event type"
)
ITEMS_PREFIX = "items_"


def event_arrays(
    users: np.ndarray,
    items: np.ndarray,
    event_types: np.ndarray,
    n_users: int,
    n_items: int,
    history: int = DEFAULT_HISTORY,
) -> dict[str, np.ndarray]:
    """The solution arrays behind `Interactions.EVENT_TYPE` filters.

    Rows must be in (user, time, file) order, as `data.read_interactions` returns them.
    Each (event type, user) keeps its `history` most recent distinct items (0: all).
    """
    import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

    types = np.char.lower(np.asarray(event_types, dtype=str)) if len(users) else np.array([""])
    names, t = np.unique(types, return_inverse=True)
    if not len(users):
        t = np.zeros(0, dtype=np.int64)
    rows = t.astype(np.int64) * n_users + users
    order = np.argsort(rows, kind="stable")  # time order kept inside each (type, user)
    rows, its = rows[order], np.asarray(items, dtype=np.int64)[order]
    keep = latest_distinct(rows, its, history if history > 0 else None)
    rows, its = rows[keep], its[keep]
    shape = (len(names) * n_users, n_items)
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, its)), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    return {
        "events_types": names.astype(str),
        "events_indptr": m.indptr.astype(np.int64),
        "events_indices": m.indices.astype(np.int32),
    }


class Events:
    """Per (event type, user) the items a user interacted with."""

    def __init__(
        self, types: np.ndarray, indptr: np.ndarray, indices: np.ndarray, n_users: int, n_items: int
    ) -> None:
        self.types = [str(t) for t in types.tolist()]
        self.indptr, self.indices = indptr, indices
        self.n_users, self.n_items = n_users, n_items

    def type_indices(self, values: Iterable[str], negate: bool = False) -> np.ndarray:
        """The stored types matching any of `values` ("*" = all; case-insensitive)."""
        wanted = {v.lower() for v in values}
        every = "*" in wanted
        hit = [every or t in wanted for t in self.types]
        return np.array([k for k, h in enumerate(hit) if h != negate], dtype=np.int64)

    def span(self, t: int, start: int, stop: int) -> sp.csr_matrix:
        """Users start..stop's items under event type t, as a users x items CSR (a view
        of the stored rows, data 1.0)."""
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        first, last = t * self.n_users + start, t * self.n_users + stop
        lo, hi = int(self.indptr[first]), int(self.indptr[last])
        indptr = self.indptr[first : last + 1] - lo
        data = np.ones(hi - lo)
        return sp.csr_matrix(
            (data, self.indices[lo:hi], indptr), shape=(stop - start, self.n_items)
        )

    def rows(self, users: np.ndarray, type_sets: list[np.ndarray]) -> sp.csr_matrix:
        """Row r: the items user `users[r]` interacted with under any type of
        `type_sets[r]` (a binary CSR; unknown users, -1, have none)."""
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        sizes = np.array([len(ts) for ts in type_sets], dtype=np.int64)
        owner = np.repeat(np.arange(len(users)), sizes)
        types = np.concatenate(type_sets) if len(type_sets) else np.zeros(0, np.int64)
        u = np.asarray(users, dtype=np.int64)[owner]
        src = np.where(u >= 0, types * self.n_users + u, -1)
        got = csr_rows(self.indptr, self.indices, src, self.n_items)
        if len(src) == len(users) and (owner == np.arange(len(users))).all():
            out = got
        else:
            agg = sp.csr_matrix(
                (np.ones(len(src), dtype=np.float32), (owner, np.arange(len(src)))),
                shape=(len(users), len(src)),
            )
            out = (agg @ got).tocsr()
        out.sum_duplicates()
        return out


@dataclass
class Categorical:
    """An item field read as categorical: item x value incidence and the value index."""

    incidence: sp.csc_matrix  # items x values
    vocab: dict[str, int]
    _rows: sp.csr_matrix | None = field(default=None, repr=False)

    def by_item(self) -> sp.csr_matrix:
        """The incidence as float32 CSR (row = item), for products."""
        if self._rows is None:
            self._rows = self.incidence.tocsr().astype(np.float32)
        return self._rows

    def translate(self, other: Categorical) -> sp.csr_matrix:
        """values x other's values, 1 where they are the same string."""
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        pairs = np.array(
            [(k, other.vocab[v]) for v, k in self.vocab.items() if v in other.vocab], dtype=np.int64
        ).reshape(-1, 2)
        return sp.csr_matrix(
            (np.ones(len(pairs), np.float32), (pairs[:, 0], pairs[:, 1])),
            shape=(len(self.vocab), len(other.vocab)),
        )

    def any_of(self, values: Iterable[str]) -> np.ndarray:
        """Items having at least one of `values` (exact, case-sensitive match)."""
        cols = [self.vocab[v] for v in set(values) if v in self.vocab]
        out = np.zeros(self.incidence.shape[0], dtype=bool)
        if cols:
            out[self.incidence[:, cols].indices] = True
        return out


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


@dataclass
class Catalogue:
    """Item ids, item fields and interactions, as filters read them."""

    item_ids: np.ndarray
    columns: dict[str, np.ndarray]
    events: Events | None = None
    no_interactions: bool = False  # items unknown to the solution: nobody interacted
    _categorical: dict[str, Categorical] = field(default_factory=dict, repr=False)
    _numeric: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_solution(cls, solution: Any) -> Catalogue:
        a = solution.arrays
        events = None
        if "events_types" in a:
            events = Events(
                a["events_types"],
                a["events_indptr"],
                a["events_indices"],
                len(solution.user_ids),
                len(solution.item_ids),
            )
        columns = {k[len(ITEMS_PREFIX) :]: v for k, v in a.items() if k.startswith(ITEMS_PREFIX)}
        return cls(solution.item_ids, columns, events)

    @classmethod
    def unknown_items(cls, item_ids: list[str], like: Catalogue) -> Catalogue:
        """Items the solution does not know: no field values, no interactions."""
        ids = np.array(item_ids, dtype=str)
        columns = {name: np.full(len(ids), "", dtype="<U1") for name in like.columns}
        return cls(ids, columns, None, no_interactions=True)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def has_field(self, name: str) -> bool:
        return name == "ITEM_ID" or name in self.columns

    def strings(self, name: str) -> np.ndarray:
        return self.item_ids if name == "ITEM_ID" else self.columns[name]

    def categorical(self, name: str) -> Categorical:
        import scipy.sparse as sp  # noqa: PLC0415  (scipy loads only where a job needs it)

        if name not in self._categorical:
            vocab: dict[str, int] = {}
            rows, cols = [], []
            split = name != "ITEM_ID"
            for i, text in enumerate(self.strings(name).tolist()):
                for value in text.split("|") if split else (text,):
                    if value:
                        rows.append(i)
                        cols.append(vocab.setdefault(value, len(vocab)))
            inc = sp.csc_matrix(
                (np.ones(len(rows), dtype=np.int8), (rows, cols)),
                shape=(self.n_items, len(vocab)),
            )
            self._categorical[name] = Categorical(inc, vocab)
        return self._categorical[name]

    def numeric(self, name: str) -> np.ndarray:
        """The field as float64, NaN where a value is empty or not a finite number."""
        if name not in self._numeric:
            uniq, inverse = np.unique(self.strings(name), return_inverse=True)
            parsed = np.array([_number(s) for s in uniq.tolist()], dtype=np.float64)
            self._numeric[name] = parsed[inverse].reshape(-1) if len(uniq) else parsed
        return self._numeric[name]


def describe_items(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    """What `pbatch describe` shows about item metadata and filter data."""
    out: dict[str, Any] = {}
    columns = {k[len(ITEMS_PREFIX) :]: v for k, v in arrays.items() if k.startswith(ITEMS_PREFIX)}
    if columns:
        cat = Catalogue(arrays["item_ids"], columns)
        fields = {}
        for name in sorted(columns):
            present = columns[name] != ""
            nums = cat.numeric(name)
            info: dict[str, Any] = {"itemsWithValue": int(present.sum())}
            if present.any() and not np.isnan(nums[present]).any():
                info = {"type": "numeric", **info}
                info.update(min=float(nums[present].min()), max=float(nums[present].max()))
            else:
                info = {"type": "categorical", **info}
                info["distinctValues"] = len(cat.categorical(name).vocab)
            fields[name] = info
        out["itemMetadata"] = {
            "fields": fields,
            "itemsWithoutInteractions": int((arrays["item_counts"] == 0).sum()),
        }
    if "events_types" in arrays:
        out["filterData"] = {
            "eventTypes": [str(t) for t in arrays["events_types"].tolist()],
            "itemsPerUserAndEventType": meta.get("training", {}).get(
                "filterHistoryLength", DEFAULT_HISTORY
            ),
        }
    return out

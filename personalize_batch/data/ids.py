"""Ids to indices: where each of a chunk's ids sits in a solution's user or item ids,
fast for a handful of ids and for millions."""

from __future__ import annotations

from typing import Any

import numpy as np

DICT_LIMIT = 250_000  # ids looked up through a dict; above, by binary search


def increasing(ids: np.ndarray) -> bool:
    """Whether ids are in strictly increasing order, as training writes them: then they
    are distinct, and an IdIndex searches them without a permutation."""
    return bool(np.all(ids[:-1] < ids[1:]))


class IdIndex:
    """Where each id sits in an array of distinct ids (a numpy unicode array).

    Up to DICT_LIMIT ids: a dict, the fastest lookup, at about 100 bytes per id. Above,
    16 bytes per id: a numpy hash of every id, sorted, and where each id sits; a chunk
    of ids is hashed and searched in that, and the hits compared with the ids
    themselves. Ids whose hash another id shares are looked up by binary search in the
    array: training writes ids sorted (np.unique); fold-in appends new users at the
    end, and then the search goes through an argsort permutation, one integer per id.
    An id the array cannot hold as it is, is unknown: one ending in a NUL character
    (numpy strips trailing NULs, so "a" + NUL would otherwise find "a"), or one longer
    than the array's strings (casting would truncate it into a false match).
    """

    def __init__(self, ids: np.ndarray, dict_limit: int = DICT_LIMIT) -> None:
        self.ids = ids
        self._chars = ids.dtype.itemsize // 4
        self._sorter: np.ndarray | None = None
        self._dict: dict[str, int] | None = None
        self._hashes: np.ndarray | None = None  # the ids' hashes, sorted
        self._by_hash: np.ndarray | None = None  # the position of each of those
        if len(ids) <= dict_limit:
            self._dict = {u: k for k, u in enumerate(ids.tolist())}
            return
        if not increasing(ids):
            self._sorter = np.argsort(ids, kind="stable").astype(np.intp, copy=False)
        hashes = self._hash(ids)
        self._by_hash = np.argsort(hashes, kind="stable").astype(np.intp, copy=False)
        self._hashes = hashes[self._by_hash]

    def _hash(self, ids: np.ndarray) -> np.ndarray:
        """A 64-bit polynomial hash of each id (ids of this array's dtype), in numpy."""
        codes = np.ascontiguousarray(ids).view(np.uint32).reshape(len(ids), self._chars)
        h = np.zeros(len(ids), dtype=np.uint64)
        for j in range(self._chars):  # arithmetic modulo 2**64
            h *= np.uint64(0x100000001B3)
            h ^= codes[:, j]
        return h

    def __len__(self) -> int:
        return len(self.ids)

    def distinct(self, block: int = 1 << 16) -> bool:
        """Whether no id appears twice: true of sorted ids at once, else checked along the
        permutation a block at a time (no copy of the whole array)."""
        if self._dict is not None:
            return len(self._dict) == len(self.ids)
        if self._sorter is None:
            return True
        s, n = self._sorter, len(self.ids)
        for start in range(0, n - 1, block):
            stop = min(start + block, n - 1)
            if (self.ids[s[start:stop]] == self.ids[s[start + 1 : stop + 1]]).any():
                return False
        return True

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, str) and self.get(id_) is not None

    def get(self, id_: str, default: Any = None) -> Any:
        """The position of one id, or `default` when it is unknown."""
        k = int(self.lookup([id_])[0])
        return k if k >= 0 else default

    def lookup(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """The position of each id (int64), -1 for ids not in the array."""
        if self._dict is not None:
            get = self._dict.get
            keys = ids.reshape(-1).tolist() if isinstance(ids, np.ndarray) else list(ids)
            return np.fromiter((get(i, -1) for i in keys), dtype=np.int64, count=len(keys))
        if isinstance(ids, np.ndarray) and ids.dtype.kind == "U":
            query = ids.reshape(-1)
            fits = np.ones(len(query), dtype=bool)
            if query.dtype.itemsize > self.ids.dtype.itemsize:
                fits = np.char.str_len(query) <= self._chars
        else:
            ids = list(ids)
            query = np.array(ids, dtype=str).reshape(-1)
            fits = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)) <= self._chars
            if "\x00" in "".join(ids):
                fits &= ~np.fromiter((i.endswith("\x00") for i in ids), bool, count=len(ids))
        out = np.full(len(query), -1, dtype=np.int64)
        if not len(self.ids) or not len(query):
            return out
        # the same dtype as the array, so numpy never copies the array to compare
        query = query.astype(self.ids.dtype)
        assert self._hashes is not None and self._by_hash is not None  # made with no dict
        h = self._hash(query)
        at = np.searchsorted(self._hashes, h)
        np.minimum(at, len(self.ids) - 1, out=at)
        pos = self._by_hash[at]
        hit = fits & (self.ids[pos] == query)
        out[hit] = pos[hit]
        # a hash two ids share: the search found one of them; the others are found by
        # binary search
        again = np.flatnonzero(fits & ~hit & (self._hashes[at] == h))
        if len(again):
            out[again] = self._search(query[again], fits[again])
        return out

    def _search(self, query: np.ndarray, fits: np.ndarray) -> np.ndarray:
        """Binary search in the id array (through the permutation when it is not sorted)
        for ids of its dtype; -1 where not found or not `fits`."""
        out = np.full(len(query), -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, query, sorter=self._sorter)
        np.minimum(pos, len(self.ids) - 1, out=pos)
        if self._sorter is not None:
            pos = self._sorter[pos]
        hit = fits & (self.ids[pos] == query)
        out[hit] = pos[hit]
        return out

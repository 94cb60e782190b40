"""Item exploration, for the recipes that declare `explores` (A.7).

*Cold* items are the items with no training interactions (they come from the items CSV)
and, when the interactions have timestamps, the items whose `CREATION_TIMESTAMP` lies
within `item_age_cutoff_days` of the newest training interaction. Each of a list's N
slots is an exploration slot with probability `weight`; for m exploration slots the list
holds m cold items drawn uniformly from the line's eligible cold items (those the filters
and exclusions leave, and not already among the model's top N - m), and the model's best
items fill the rest. The list is then ordered by score as always (A.4), so explored items,
whose scores are usually low, tend to come last.

Randomness: a PCG64 stream per line, seeded with a hash of (`seed`, userId). The same
line gets the same list whatever the chunking, worker count or CPU; only integer
arithmetic and exact float comparisons decide what is drawn.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from ..recipes.numeric import topk

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Exploration:
    """itemExplorationConfig (B.1): explorationWeight, explorationItemAgeCutOff; plus the seed."""

    weight: float = 0.3
    item_age_cutoff_days: float = 30.0
    seed: int = 0

    def check(self) -> Exploration:
        if not 0.0 <= self.weight <= 1.0:
            raise UsageError(f"--exploration-weight must be 0-1, not {self.weight}")
        if not self.item_age_cutoff_days >= 1.0 or not math.isfinite(self.item_age_cutoff_days):
            raise UsageError(
                "--exploration-item-age-cutoff must be at least 1 day, "
                f"not {self.item_age_cutoff_days}"
            )
        if self.seed < 0:
            raise UsageError(f"--seed must be 0 or more, not {self.seed}")
        return self

    def as_config(self) -> dict[str, str]:
        """As Personalize records it: strings (B.1)."""
        return {
            "explorationWeight": f"{self.weight:g}",
            "explorationItemAgeCutOff": f"{self.item_age_cutoff_days:g}",
        }


def cold_items(solution: Any, cutoff_days: float) -> np.ndarray:
    """Indices (ascending) of the solution's cold items."""
    a = solution.arrays
    cold = a["item_counts"] == 0
    created = a.get("items_CREATION_TIMESTAMP")
    newest = newest_training_time(solution)
    if created is not None and newest is not None:
        from ..filters import Catalogue  # noqa: PLC0415  (only with item metadata)

        numbers = Catalogue(solution.item_ids, {"T": created}).numeric("T")
        with np.errstate(invalid="ignore"):
            cold |= numbers >= newest - cutoff_days * SECONDS_PER_DAY
    return np.flatnonzero(cold)


def newest_training_time(solution: Any) -> float | None:
    """The newest training interaction's time, from the solution's metadata (any recipe
    that keeps timestamps); a solution written before it was kept there falls back to
    the user model's histories. None without timestamps."""
    training = solution.meta.get("training", {})
    if not training.get("hasTimestamps"):
        return None
    if training.get("latestTimestamp") is not None:
        return float(training["latestTimestamp"])
    times = solution.arrays.get("up_history_times")
    return float(times.max()) if times is not None and len(times) else None


class Explorer:
    """Chooses each line's list with exploration slots."""

    def __init__(self, solution: Any, config: Exploration) -> None:
        self.config = config
        self.cold = cold_items(solution, config.item_age_cutoff_days)

    @property
    def active(self) -> bool:
        """False when exploration cannot change anything (weight 0 or no cold items)."""
        return self.config.weight > 0 and len(self.cold) > 0

    def _raw(self, key: str, n: int) -> list[int]:
        digest = hashlib.blake2b(
            f"{self.config.seed}\x00{key}".encode(), digest_size=16, person=b"pbatch-explore"
        ).digest()
        return [int(x) for x in np.random.PCG64(int.from_bytes(digest, "little")).random_raw(n)]

    def choose(
        self, keys: np.ndarray, k: int, row_keys: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like `topk(keys, k)` (entries at -inf are not eligible), with exploration."""
        if not self.active:
            return topk(keys, k)
        n_rows, n = keys.shape
        k = min(k, n)
        wide, wide_len = topk(keys, min(2 * k, n))
        eligible = np.isfinite(keys[:, self.cold])
        idx = np.zeros((n_rows, k), dtype=np.int64)
        lengths = np.zeros(n_rows, dtype=np.int64)
        # slot j explores when its uniform (53 bits of the raw draw) is below the weight
        threshold = self.config.weight * 2.0**53
        for r in range(n_rows):
            model = wide[r, : wide_len[r]]
            raw = self._raw(row_keys[r], 2 * k)
            m = sum(1 for x in raw[:k] if (x >> 11) < threshold)
            picks = np.zeros(0, dtype=np.int64)
            if m:
                pool = self.cold[eligible[r]]
                pool = pool[~np.isin(pool, model[: k - m])]
                take = min(m, len(pool))
                for j in range(take):  # a partial Fisher-Yates shuffle, integers only
                    pick = j + ((raw[k + j] * (len(pool) - j)) >> 64)
                    pool[j], pool[pick] = pool[pick], pool[j]
                picks = pool[:take]
            rest = model[~np.isin(model, picks)][: k - len(picks)]
            chosen = np.concatenate([picks, rest])
            order = np.lexsort((chosen, -keys[r, chosen]))
            idx[r, : len(chosen)] = chosen[order]
            lengths[r] = len(chosen)
        return idx, lengths

"""Id diagnostics: how many of a job's user and item ids the solution does not know, with
examples, and the likely cause when many are unknown (leading zeros, case, spaces,
numbers sent instead of strings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WARN_SHARE = 0.2
EXAMPLES_SHOWN = 5
EXAMPLES_KEPT = 50


@dataclass
class IdTally:
    """Running totals of ids looked up and not found, over a whole job."""

    users: int = 0
    unknown_users: int = 0
    user_examples: list[str] = field(default_factory=list)
    items: int = 0
    unknown_items: int = 0
    item_examples: list[str] = field(default_factory=list)

    def merge(self, other: IdTally) -> None:
        """Add another job part's totals (a Dask partition's)."""
        self.add(other)

    def add(self, part: Any) -> None:
        """Add one chunk's scoring.IdCounts."""
        if part is None:
            return
        self.users += part.users
        self.unknown_users += part.unknown_users
        self.items += part.items
        self.unknown_items += part.unknown_items
        for mine, theirs in (
            (self.user_examples, part.user_examples),
            (self.item_examples, part.item_examples),
        ):
            for example in theirs:
                if len(mine) < EXAMPLES_KEPT and example not in mine:
                    mine.append(example)


def _normalizers() -> list[tuple[str, Any]]:
    return [
        ("leading zeros differ", lambda s: s.lstrip("0") or "0"),
        ("letter case or surrounding spaces differ", lambda s: s.strip().lower()),
    ]


def likely_causes(examples: list[str], known: list[str]) -> list[str]:
    """Why unknown ids might be known ones written differently, with one example each."""
    causes = []
    for what, norm in _normalizers():
        index: dict[str, str] = {}
        for k in known:
            index.setdefault(norm(k), k)
        for ex in examples:
            match = index.get(norm(ex))
            if match is not None and match != ex:
                causes.append(f'{what}: "{ex}" is "{match}" in the solution')
                break
    return causes


def diagnose(
    tally: IdTally,
    ids_not_strings: int,
    user_ids: Any,
    item_ids: Any,
    *,
    lists_ignored: int = 0,
    recipe: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """The record's idDiagnostics and the warnings to print (unknown ids above 20%, ids
    sent as numbers, item lists the recipe does not read)."""
    record: dict[str, Any] = {}
    warnings: list[str] = []
    for kind, looked, unknown, examples, known in (
        ("user", tally.users, tally.unknown_users, tally.user_examples, user_ids),
        ("item", tally.items, tally.unknown_items, tally.item_examples, item_ids),
    ):
        if not looked:
            continue
        share = unknown / looked
        record[f"{kind}Ids"] = looked
        record[f"unknown{kind.title()}Ids"] = unknown
        record[f"unknown{kind.title()}Share"] = round(share, 4)
        record[f"unknown{kind.title()}Examples"] = examples[:EXAMPLES_SHOWN]
        if share > WARN_SHARE:
            causes = likely_causes(examples, known.tolist() if hasattr(known, "tolist") else known)
            text = (
                f"{share:.0%} of {kind}Ids ({unknown:,} of {looked:,}) are not in the "
                f"solution, e.g. " + ", ".join(f'"{e}"' for e in examples[:3])
            )
            if causes:
                text += "; likely cause: " + "; ".join(causes)
            warnings.append(text)
    if ids_not_strings:
        record["idsNotStrings"] = ids_not_strings
        lines = "1 line" if ids_not_strings == 1 else f"{ids_not_strings:,} lines"
        warnings.append(
            f"{lines} gave an id as a JSON number or other non-string: "
            'ids must be strings ("0042", not 42)'
        )
    if lists_ignored:
        from .. import recipes  # noqa: PLC0415  (every recipe: a warning's cost only)

        record["listsIgnored"] = lists_ignored
        lines = "1 line has" if lists_ignored == 1 else f"{lists_ignored:,} lines have"
        rankers = " or ".join(r.name for r in recipes.recipes() if r.query.ranks)
        warnings.append(
            f"{lines} an item list (itemList, itemIds or inputList), which a {recipe} "
            f"solution does not read: it was ignored (a {rankers} solution re-ranks such "
            "lists)"
        )
    record["warnings"] = warnings
    return record, warnings


def summary_line(record: dict[str, Any]) -> str | None:
    """One stderr line on unknown ids, or None when every id was known."""
    parts = []
    for kind in ("User", "Item"):
        unknown = record.get(f"unknown{kind}Ids")
        if unknown:
            examples = ", ".join(f'"{e}"' for e in record[f"unknown{kind}Examples"][:3])
            parts.append(
                f"{unknown:,} unknown {kind.lower()}Ids "
                f"({record[f'unknown{kind}Share']:.1%}, e.g. {examples})"
            )
    return "; ".join(parts) if parts else None

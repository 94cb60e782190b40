"""`pbatch validate` / `pbatch run --dry-run`: check every line against the recipe's
schema without scoring, and count the ids the solution does not know."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import recipes, storage
from ..data.ids import IdIndex
from ..solution import load
from . import preflight
from .counts import Counts
from .diagnostics import IdTally, diagnose
from .lines import BadLine, line_parser
from .reading import read_numbered_chunks
from .scoring import IdCounts


@dataclass
class Report:
    """What validation found."""

    recipe: str
    inputs: list[str] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        c = self.counts
        return {
            "recipe": self.recipe,
            "inputs": self.inputs,
            "linesRead": c.read,
            "validLines": c.read - c.errors,
            "linesWithErrors": c.errors,
            "blankLinesSkipped": c.blank,
            **self.diagnostics,
        }


def validate(
    solution_path: str, input_path: str, endpoint_url: str | None = None
) -> tuple[Report, Iterator[str]]:
    """A report and an iterator of 'FILE:LINE: message' problems; the report is complete
    once the iterator is exhausted."""
    solution = load(solution_path)
    parse = line_parser(recipes.recipe(solution.recipe))
    refs = storage.list_inputs(input_path, endpoint_url)
    report = Report(solution.recipe, [ref.url for ref in refs])
    look = preflight.look(refs[0].url, solution.recipe, endpoint_url)
    if look is not None and look.not_text is not None:
        preflight.check(refs, solution.recipe, endpoint_url)  # refused, as `run` would
    refused = preflight.refused(refs, solution.recipe, endpoint_url) if look else None
    users, items = solution.user_index, solution.item_index

    def problems() -> Iterator[str]:
        counts = report.counts
        tally = counts.ids
        for ref in refs:
            stream = storage.open_input(ref.url, endpoint_url)
            try:
                for chunk, numbers in read_numbered_chunks(stream, counts, 4096):
                    good = []
                    for (raw, too_long), number in zip(chunk, numbers, strict=True):
                        parsed = parse(raw, too_long)
                        if isinstance(parsed, BadLine):
                            counts.errors += 1
                            counts.ids_not_strings += parsed.error.endswith("must be a string")
                            yield f"{ref.name}:{number}: {parsed.error}"
                            continue
                        counts.lists_ignored += parsed.ignored is not None
                        good.append(parsed)
                    for ids in _ids(good, users, items):
                        tally.add(ids)
            finally:
                if ref.url != "-":
                    stream.close()
        report.diagnostics, _ = diagnose(
            tally,
            counts.ids_not_strings,
            solution.user_ids,
            solution.item_ids,
            lists_ignored=counts.lists_ignored,
            recipe=solution.recipe,
        )
        if refused is not None:
            report.diagnostics["warnings"].append(f"pbatch run refuses this input: {refused}")
        if not counts.read:
            name = refs[0].name if len(refs) == 1 else f"the {len(refs)} input files"
            blank = "1 blank line" if counts.blank == 1 else f"{counts.blank:,} blank lines"
            what = f"holds only {blank}" if counts.blank else "is empty"
            report.diagnostics["warnings"].append(f"{name} {what}: no line to answer")

    return report, problems()


def _ids(requests: list[Any], users: IdIndex, items: IdIndex) -> list[IdCounts]:
    """The ids each request looks up, and those the solution does not know."""
    given = [r.user for r in requests if r.user is not None]
    user_known = iter((users.lookup(given) >= 0).tolist())
    looked = [
        list(dict.fromkeys([r.item] if r.item is not None else r.items or ())) for r in requests
    ]
    item_known = iter((items.lookup([i for ids in looked for i in ids]) >= 0).tolist())
    out = []
    for r, distinct in zip(requests, looked, strict=True):
        user_unknown = r.user is not None and not next(user_known)
        unknown = [i for i in distinct if not next(item_known)]
        out.append(
            IdCounts(
                users=int(r.user is not None),
                unknown_users=int(user_unknown),
                user_examples=(r.user,) if user_unknown else (),
                items=len(distinct),
                unknown_items=len(unknown),
                item_examples=tuple(unknown[:5]),
            )
        )
    return out


__all__ = ["IdTally", "Report", "validate"]

"""The registry of recipes: one entry each – the name, Personalize's other spellings of
it, and the module that declares it (its `RECIPE`, see `protocol`).

Adding a recipe is a module and an entry here. A recipe's module is imported when the
recipe is used, so a job loads its own recipe only (a popularity-count job never
imports scipy); listing every recipe (`pbatch describe --recipe`, some error messages)
imports them all. This module and `protocol` import no numpy.
"""

from __future__ import annotations

import difflib
from importlib import import_module
from typing import NamedTuple

from ..errors import UsageError
from .protocol import Recipe


class Entry(NamedTuple):
    name: str  # the canonical name
    module: str  # the module of this package that declares it
    aliases: tuple[str, ...]  # other names accepted (A.1)


REGISTRY = (
    Entry(
        "user-personalization",
        "user_personalization",
        ("aws-user-personalization", "aws-hrnn", "hrnn"),
    ),
    Entry("popularity-count", "popularity", ("aws-popularity-count",)),
    Entry("personalized-ranking", "personalized_ranking", ("aws-personalized-ranking",)),
    Entry("sims", "sims", ("aws-sims",)),
    Entry("trending-now", "trending", ("aws-trending-now",)),
    Entry("item-affinity", "item_affinity", ("aws-item-affinity",)),
    Entry("item-attribute-affinity", "item_attribute_affinity", ("aws-item-attribute-affinity",)),
)
ARN_PREFIX = "arn:aws:personalize:::recipe/"


def names() -> list[str]:
    """Every recipe's canonical name, in the registry's order."""
    return [entry.name for entry in REGISTRY]


def entry(name: str) -> Entry:
    """The entry of a recipe named by its name, an alias or its ARN (A.1); a usage
    error naming the recipes there are otherwise."""
    key = name.strip().lower()
    if key.startswith(ARN_PREFIX):
        key = key.rsplit("/", 1)[1]
    for found in REGISTRY:
        if key == found.name or key in found.aliases:
            return found
    raise UsageError(f"unknown recipe {name!r}{_nearest(key)} (known: {', '.join(names())})")


def _nearest(key: str) -> str:
    """', did you mean NAME?' for the recipe name or alias closest to `key` (difflib),
    or "" when none is close."""
    spellings = [s for found in REGISTRY for s in (found.name, *found.aliases)]
    close = difflib.get_close_matches(key, spellings, n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


def canonical(name: str) -> str:
    """The canonical name of a recipe name or alias (A.1), or a usage error."""
    return entry(name).name


def recipe(name: str) -> Recipe:
    """The declaration of a recipe (its module is imported on first use)."""
    found = entry(name)
    declared = import_module(f".{found.module}", __name__).RECIPE
    if declared.name != found.name:  # a module declares the recipe its entry names
        raise RuntimeError(f"recipes.{found.module} declares {declared.name!r}, not {found.name!r}")
    return declared


def recipes() -> list[Recipe]:
    """Every recipe's declaration, in the registry's order (imports every module)."""
    return [recipe(entry.name) for entry in REGISTRY]

"""`pbatch describe`: a solution, or a recipe's hyperparameters."""

from __future__ import annotations

from typing import Any

import click

from .common import RECIPE_HELP, emit, main


@main.command()
@click.argument("solution", metavar="[SOLUTION]", required=False)
@click.option(
    "--recipe",
    "-r",
    default=None,
    metavar="NAME",
    help=f"Describe a recipe instead: its hyperparameters ({RECIPE_HELP}).",
)
@click.option("--json", "as_json", is_flag=True, help="With --recipe: print JSON.")
def describe(solution: str | None, recipe: str | None, as_json: bool) -> None:
    """Print a solution's recipe, hyperparameters, counts and metrics as JSON; or, with
    --recipe, a recipe's hyperparameters with their defaults, ranges and meaning.

    \b
    Examples:
      pbatch describe model.npz
      pbatch describe --recipe sims
      pbatch describe --recipe user-personalization --json
    """
    if (solution is None) == (recipe is None):
        raise click.UsageError("give a SOLUTION file or --recipe NAME (one of them)")
    if recipe is not None:
        table = recipe_table(recipe)
        if as_json:
            emit(table)
        else:
            click.echo(format_recipe(table))
        return
    if as_json:
        raise click.UsageError("--json goes with --recipe (a solution is always JSON)")
    from ..solution import load  # noqa: PLC0415

    emit(load(solution).describe())


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _range(low: Any, high: Any, kind: type) -> str:
    if kind is bool:
        return "true or false"
    if low is None and high is None:
        return "any"
    if high is None:
        return f">= {_number(low)}"
    if low is None:
        return f"<= {_number(high)}"
    return f"{_number(low)}-{_number(high)}"


def recipe_table(name: str) -> dict[str, Any]:
    """A recipe's description and hyperparameter table, read from its declaration."""
    from .. import recipes  # noqa: PLC0415

    entry = recipes.entry(name)
    declared = recipes.recipe(entry.name)
    params = []
    for p in declared.hyperparameters.params:
        kind = p.kind
        default = p.default
        params.append(
            {
                "name": p.name,
                "type": {bool: "bool", int: "int", float: "float"}.get(kind, kind.__name__),
                "default": default,
                "min": p.low,
                "max": p.high,
                "range": (
                    "one of: " + ", ".join(p.choices) if p.choices else _range(p.low, p.high, kind)
                ),
                "help": p.help,
            }
        )
    return {
        "recipe": entry.name,
        "aliases": list(entry.aliases),
        "recipeType": declared.recipe_type,
        "lineAsks": declared.example,
        "hyperparameters": params,
    }


def format_recipe(table: dict[str, Any]) -> str:
    """The table as text: a head line, then one line per hyperparameter."""
    head = (
        f"{table['recipe']} ({table['recipeType']}; also {', '.join(table['aliases'])}): "
        f"a line asks {table['lineAsks']}"
    )
    params = table["hyperparameters"]
    if not params:
        return head + "\nno hyperparameters"
    rows = [("hyperparameter", "default", "range", "what it does")]
    for p in params:
        default = str(p["default"]).lower() if p["type"] == "bool" else f"{p['default']}"
        rows.append((p["name"], default, p["range"], p["help"]))
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    ]
    return "\n".join([head, "", *(line.rstrip() for line in lines)])

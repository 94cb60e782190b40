"""`pbatch describe`."""

from __future__ import annotations

import click

from . import emit, main


@main.command()
@click.argument("solution", metavar="SOLUTION")
def describe(solution: str) -> None:
    """Print a solution's recipe, hyperparameters, counts and metrics as JSON."""
    from ..solution import load  # noqa: PLC0415

    emit(load(solution).describe())

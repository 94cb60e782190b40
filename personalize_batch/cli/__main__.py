"""`python -m personalize_batch.cli` runs pbatch."""

from . import main

main(prog_name="pbatch")

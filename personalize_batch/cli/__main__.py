"""`python -m personalize_batch.cli` runs pbatch."""

from . import main

if __name__ == "__main__":  # not when a spawned Dask worker process re-imports this module
    main(prog_name="pbatch")

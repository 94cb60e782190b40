"""The `pbatch` command line: parse options, call one library function, print JSON.

One small module per command group (each registers its commands on `main`); `common`
holds the group, the shared options and the error mapping.
"""

from . import answer, aws, console, evaluate, inspect, jobs, run, solution, train  # noqa: F401
from .common import main

__all__ = ["main"]

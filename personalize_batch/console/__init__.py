"""The local web console (`pbatch console`)."""

from .app import Console, make_console

__all__ = ["Console", "make_console"]

"""The version of pbatch (a leaf module: what imports it imports nothing back)."""

__version__ = "0.1.0"

"""pbatch: an offline, command-line twin of Amazon Personalize batch inference."""

__version__ = "0.1.0"

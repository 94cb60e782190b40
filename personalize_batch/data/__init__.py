"""The data a solution is trained on: Personalize's dataset CSVs read into id maps and
integer arrays (`datasets`), ids looked up in those maps (`ids`), the splits of them
that evaluation and tuning hold out (`splits`), and what the data says before any model
is fitted (`profile`)."""

from .datasets import Interactions, Items, not_utf8_text, read_interactions, read_items

__all__ = ["Interactions", "Items", "not_utf8_text", "read_interactions", "read_items"]

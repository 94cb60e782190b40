"""Item attribute expressions, the queries of item-attribute-affinity:
`ITEMS.genres = "Comedy" AND (ITEMS.genres = "Action" OR ITEMS.mood = "dark")`.

    expression := term { OR term }
    term       := factor { AND factor }
    factor     := "(" expression ")" | ITEMS "." field "=" string
    string     := '"' { character other than '"' and '\\' | '\\' any character } '"'

AND binds tighter than OR; keywords and field names are case-insensitive (fields are
kept upper-cased, as the solution stores them); a value is case-sensitive. Personalize
documents `=` and `AND`; OR and parentheses are pbatch's. A multi-valued field (values
joined with `|` in the items CSV) equals a value when any of its values does.

`parse` returns a small tree of tuples – ("=", FIELD, value), ("AND", (…)), ("OR", (…)) –
or raises ExpressionError with the position of the problem; `unparse` writes a tree
back in a canonical form that `parse` reads to the same tree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .catalogue import Catalogue

Node = tuple  # ("=", FIELD, value) or ("AND" or "OR", (Node, ...))

MAX_LENGTH = 2500  # characters: Personalize's bound on a filter expression
MAX_DEPTH = 50  # nested parentheses


class ExpressionError(ValueError):
    """An expression that cannot be read or answered; the message says why and where."""


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<open>\() | (?P<close>\)) | (?P<eq>=) | (?P<dot>\.)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<bad>\S)
    )""",
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) of each token, then ("end", "", len(text))."""
    out = []
    pos = 0
    while True:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:  # only white space left
            break
        kind = m.lastgroup or "bad"
        start = m.start(kind)
        if kind == "bad":
            if text[start] == '"':
                raise ExpressionError(f"unterminated string starting at character {start + 1}")
            raise ExpressionError(f"unexpected {text[start]!r} at character {start + 1}")
        out.append((kind, m.group(kind), start))
        pos = m.end()
    out.append(("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.at]

    def keyword(self, word: str) -> bool:
        kind, text, _ = self.peek()
        if kind == "word" and text.upper() == word:
            self.at += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> str:
        got, text, pos = self.peek()
        if got != kind:
            found = "the end" if got == "end" else repr(text)
            raise ExpressionError(f"expected {what} at character {pos + 1}, found {found}")
        self.at += 1
        return text

    def expression(self) -> Node:
        parts = [self.term()]
        while self.keyword("OR"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else ("OR", tuple(parts))

    def term(self) -> Node:
        parts = [self.factor()]
        while self.keyword("AND"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else ("AND", tuple(parts))

    def factor(self) -> Node:
        kind, _, pos = self.peek()
        if kind == "open":
            self.at += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(
                    f"parentheses nested more than {MAX_DEPTH} deep at character {pos + 1}"
                )
            inner = self.expression()
            self.expect("close", "')'")
            self.depth -= 1
            return inner
        if not self.keyword("ITEMS"):
            found = "the end" if kind == "end" else repr(self.peek()[1])
            raise ExpressionError(
                f'expected ITEMS.<field> = "value" or "(" at character {pos + 1}, found {found}'
            )
        self.expect("dot", "'.' after ITEMS")
        name = self.expect("word", "a field name after ITEMS.")
        self.expect("eq", f"'=' after ITEMS.{name}")
        quoted = self.expect("string", 'a quoted value, like "Comedy"')
        return ("=", name.upper(), _UNESCAPE.sub(r"\1", quoted[1:-1]))


def parse(text: str) -> Node:
    """The tree of an expression, or ExpressionError saying what is wrong and where."""
    if not isinstance(text, str):
        raise ExpressionError("itemAttributes must be a string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError('expression is empty: give ITEMS.<field> = "value"')
    p = _Parser(text)
    tree = p.expression()
    kind, token, pos = p.peek()
    if kind != "end":
        raise ExpressionError(
            f"expected AND, OR or the end at character {pos + 1}, found {token!r}"
        )
    return tree


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unparse(tree: Node) -> str:
    """The canonical text of a tree (parse(unparse(t)) == t for a tree parse made)."""
    op = tree[0]
    if op == "=":
        return f"ITEMS.{tree[1]} = {_quote(tree[2])}"
    parts = []
    for child in tree[1]:
        text = unparse(child)
        # an OR inside an AND, or a group of the same operator, keeps its parentheses
        parts.append(f"({text})" if child[0] in ("AND", "OR") else text)
    return f" {op} ".join(parts)


def fields(tree: Node) -> set[str]:
    """The fields an expression reads."""
    if tree[0] == "=":
        return {tree[1]}
    return set().union(*(fields(c) for c in tree[1]))


def matching_items(tree: Node, catalogue: Catalogue) -> np.ndarray:
    """A boolean mask of the items an expression holds for. A field the catalogue does
    not have raises ExpressionError naming the fields it has."""
    missing = sorted(f for f in fields(tree) if not catalogue.has_field(f))
    if missing and not catalogue.columns:
        raise ExpressionError(
            f"the solution has no item metadata, so no field {', '.join(missing)}: "
            "train it with --items ITEMS.csv"
        )
    if missing:
        have = ", ".join(sorted(catalogue.columns))
        raise ExpressionError(
            f"the item metadata has no field {', '.join(missing)} (its fields: {have})"
        )
    return _evaluate(tree, catalogue)


def _evaluate(tree: Node, catalogue: Catalogue) -> np.ndarray:
    if tree[0] == "=":
        return catalogue.categorical(tree[1]).any_of([tree[2]])
    masks = [_evaluate(c, catalogue) for c in tree[1]]
    out = masks[0].copy()
    for m in masks[1:]:
        if tree[0] == "AND":
            out &= m
        else:
            out |= m
    return out

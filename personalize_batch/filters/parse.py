"""Personalize filter expressions: text -> a checked syntax tree (A.6, B.3).

    filter     := expression { "|" expression }        (every expression: one target)
    expression := (INCLUDE | EXCLUDE) (ItemID | UserID) WHERE conjunction { OR conjunction }
    conjunction:= condition { AND condition }                  (AND binds tighter)
    condition  := Items.F (IN | NOT IN) ( "(" strings ")" | "(" $P ")" | CurrentItem.F )
                | Items.F (= | != | < | <= | > | >=) ( number | $P | "(" $P ")" | CurrentItem.F )
                | Interactions.EVENT_TYPE (IN | NOT IN) ( "(" strings ")" | "(" $P ")" )

ItemID expressions filter recommended items (Items and Interactions conditions);
UserID expressions filter the users of a segment job (Interactions conditions: the
users who interacted with the line's items). pbatch has no users dataset, so `Users.F`
conditions are refused.

Keywords, dataset names and field names are case-insensitive (fields are matched upper-
cased, as `train` stores item columns); placeholder names are case-sensitive. Every error
names the character position and what was expected there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from .values import scan_string

MAX_LENGTH = 2500
MAX_FIELDS = 10  # distinct dataset fields per filter (B.3)
CMP_OPS = ("=", "!=", "<", "<=", ">", ">=")
MAX_KEY_LENGTH = 50  # a placeholder is a filterValues key


class FilterSyntaxError(UsageError):
    """A filter that does not parse (or does not fit the solution): exit 2, before any output."""

    def __init__(
        self, source: str, text: str, pos: int, message: str, snippet: bool = True
    ) -> None:
        self.pos = pos  # 0-based character offset
        shown = f"\n{_snippet(text, pos)}" if text.strip() and snippet else ""
        super().__init__(f"{source}: at character {pos + 1}: {message}{shown}")


def _snippet(text: str, pos: int, width: int = 76) -> str:
    """The expression around `pos` on one line with a caret under it."""
    flat = text.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    start = max(0, min(pos - width // 2, len(flat) - width))
    shown = flat[start : start + width]
    lead = "…" if start > 0 else ""
    tail = "…" if start + width < len(flat) else ""
    return f"  {lead}{shown}{tail}\n  {' ' * (len(lead) + pos - start)}^"


@dataclass(frozen=True)
class Condition:
    """One comparison: `dataset.field op value`.

    Exactly one of `values` (a literal list for IN / NOT IN; "*" is every event type),
    `number`, `placeholder` or `current` (a CurrentItem field) holds the right side.
    """

    dataset: str  # "Items" or "Interactions"
    field: str  # upper-cased
    op: str  # "IN", "NOT IN" or one of CMP_OPS
    values: tuple[str, ...] | None = None
    number: float | None = None
    placeholder: str | None = None
    current: str | None = None
    pos: int = 0


ITEM_ID, USER_ID = "ItemID", "UserID"  # what an expression filters


@dataclass(frozen=True)
class Expression:
    """INCLUDE or EXCLUDE ItemID (or UserID) WHERE an OR of ANDs of conditions."""

    action: str  # "INCLUDE" or "EXCLUDE"
    where: tuple[tuple[Condition, ...], ...]  # OR of ANDs
    pos: int = 0
    target: str = ITEM_ID  # ITEM_ID or USER_ID

    @property
    def conditions(self) -> list[Condition]:
        return [c for conj in self.where for c in conj]

    @property
    def dataset(self) -> str:
        return self.where[0][0].dataset

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.placeholder for c in self.conditions if c.placeholder))

    @property
    def uses_current_item(self) -> bool:
        return any(c.current for c in self.conditions)


@dataclass(frozen=True)
class Filter:
    """A parsed filter: its text and its expressions, in order."""

    text: str
    expressions: tuple[Expression, ...]

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for e in self.expressions for p in e.placeholders))

    @property
    def target(self) -> str:
        """ItemID (the filter takes items out of lists) or UserID (users of segments)."""
        return self.expressions[0].target


# ------------------------------------------------------------------ lexer

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<placeholder>\$[A-Za-z0-9_]*)
      | (?P<op><=|>=|!=|=|<|>)
      | (?P<punct>[().,|*])
      | (?P<string>")
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # word, number, placeholder, op, punct, string, end
    text: str  # the token's value (a string's contents, unescaped)
    pos: int


def tokenize(text: str, source: str) -> list[Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = " (values take double quotes)" if ch in "'‘’“”" else ""
            raise FilterSyntaxError(source, text, pos, f"unexpected character {ch!r}{hint}")
        kind = m.lastgroup
        if kind == "string":
            try:
                value, end = scan_string(text, pos)
            except ValueError as exc:
                raise FilterSyntaxError(source, text, pos, str(exc)) from None
            tokens.append(Token("string", value, pos))
            pos = end
            continue
        if kind == "placeholder" and not 2 <= len(m.group()) <= MAX_KEY_LENGTH + 1:
            raise FilterSyntaxError(
                source,
                text,
                pos,
                f"expected a placeholder name of 1-{MAX_KEY_LENGTH} letters, digits or _ after $",
            )
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# ------------------------------------------------------------------ parser


def _describe(tok: Token) -> str:
    if tok.kind == "end":
        return "the end of the filter"
    if tok.kind == "string":
        return f'"{tok.text}"'
    return repr(tok.text)


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text, self.source = text, source
        self.tokens = tokenize(text, source)
        self.k = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.k]

    def fail(self, message: str, tok: Token | None = None) -> FilterSyntaxError:
        tok = tok or self.tok
        return FilterSyntaxError(self.source, self.text, tok.pos, message)

    def expected(self, what: str) -> FilterSyntaxError:
        return self.fail(f"expected {what}, found {_describe(self.tok)}")

    def next(self) -> Token:
        tok = self.tok
        self.k += 1
        return tok

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.upper() in words

    def punct(self, ch: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == ch

    def expect_punct(self, ch: str, what: str) -> Token:
        if not self.punct(ch):
            raise self.expected(what)
        return self.next()

    def parse(self) -> Filter:
        expressions = [self.expression()]
        while self.punct("|"):
            self.next()
            expressions.append(self.expression())
        if self.tok.kind != "end":
            raise self.expected("AND, OR, | or the end of the filter")
        filt = Filter(self.text, tuple(expressions))
        for expr in expressions[1:]:
            if expr.target != filt.target:
                raise FilterSyntaxError(
                    self.source,
                    self.text,
                    expr.pos,
                    f"every expression of a filter filters the same thing: the first "
                    f"filters {filt.target}, this one {expr.target}",
                )
        conds = [c for e in expressions for c in e.conditions]
        fields = {(c.dataset, c.field) for c in conds} | {
            ("Items", c.current) for c in conds if c.current
        }
        if len(fields) > MAX_FIELDS:
            raise FilterSyntaxError(
                self.source,
                self.text,
                0,
                f"the filter uses {len(fields)} distinct dataset fields (at most {MAX_FIELDS})",
            )
        return filt

    def expression(self) -> Expression:
        start = self.tok
        if not self.is_word("INCLUDE", "EXCLUDE"):
            raise self.expected("INCLUDE or EXCLUDE")
        action = self.next().text.upper()
        if self.is_word("ACTIONID"):
            raise self.fail("ActionID is for action recommendations, which pbatch lacks")
        if not self.is_word("ITEMID", "USERID"):
            raise self.expected("ItemID or UserID")
        target = ITEM_ID if self.next().text.upper() == "ITEMID" else USER_ID
        if not self.is_word("WHERE"):
            raise self.expected("WHERE")
        self.next()
        where = [self.conjunction(target)]
        while self.is_word("OR"):
            self.next()
            where.append(self.conjunction(target))
        if self.is_word("IF"):
            raise self.fail(
                "IF CurrentUser conditions need a users dataset, which pbatch does not have"
            )
        expr = Expression(action, tuple(where), start.pos, target)
        first = expr.conditions[0]
        for cond in expr.conditions[1:]:
            if cond.dataset != first.dataset:
                raise FilterSyntaxError(
                    self.source,
                    self.text,
                    cond.pos,
                    f"the conditions of one expression must all use {first.dataset} (its first "
                    f"condition's dataset), found {cond.dataset}; chain expressions with |",
                )
        return expr

    def conjunction(self, target: str) -> tuple[Condition, ...]:
        conds = [self.condition(target)]
        while self.is_word("AND"):
            self.next()
            conds.append(self.condition(target))
        return tuple(conds)

    def dataset_field(self, allowed: tuple[str, ...]) -> tuple[str, str, Token]:
        tok = self.tok
        names = {"ITEMS": "Items", "INTERACTIONS": "Interactions", "CURRENTITEM": "CurrentItem"}
        if tok.kind != "word" or tok.text.upper() not in names:
            if tok.kind == "word" and tok.text.upper() in ("USERS", "CURRENTUSER"):
                raise FilterSyntaxError(
                    self.source,
                    self.text,
                    tok.pos,
                    f"{tok.text} conditions need a users dataset, which pbatch does not have "
                    "(it reads interactions and items only)",
                    snippet=False,
                )
            if tok.kind == "word" and tok.text.upper().startswith("ACTION"):
                raise self.fail(f"{tok.text} is for action recommendations, which pbatch lacks")
            raise self.expected(" or ".join(f"{a}.FIELD" for a in allowed))
        dataset = names[tok.text.upper()]
        if dataset not in allowed:
            raise self.expected(" or ".join(f"{a}.FIELD" for a in allowed))
        self.next()
        self.expect_punct(".", f"a . and a field name after {tok.text}")
        if self.tok.kind != "word":
            raise self.expected(f"a field name after {tok.text}.")
        return dataset, self.next().text.upper(), tok

    def condition(self, target: str) -> Condition:
        if target == USER_ID and self.is_word("ITEMS", "CURRENTITEM"):
            raise self.fail(
                "a UserID expression selects users by their interactions with the line's "
                "items: its conditions use Interactions.EVENT_TYPE, not Items fields"
            )
        allowed = ("Interactions",) if target == USER_ID else ("Items", "Interactions")
        dataset, field, start = self.dataset_field(allowed)
        pos = start.pos
        if dataset == "Interactions" and field != "EVENT_TYPE":
            raise self.fail(
                f"Interactions filters can use EVENT_TYPE only, not {field}",
                self.tokens[self.k - 1],
            )
        if self.is_word("NOT"):
            self.next()
            if not self.is_word("IN"):
                raise self.expected("IN after NOT")
            self.next()
            return self.in_rhs(dataset, field, "NOT IN", pos)
        if self.is_word("IN"):
            self.next()
            return self.in_rhs(dataset, field, "IN", pos)
        if self.tok.kind == "op":
            if dataset == "Interactions":
                raise self.fail("Interactions.EVENT_TYPE takes IN or NOT IN only")
            op = self.next().text
            return self.cmp_rhs(field, op, pos)
        raise self.expected(f"IN, NOT IN or one of {', '.join(CMP_OPS)} after {dataset}.{field}")

    def current_field(self) -> str:
        _, field, _ = self.dataset_field(("CurrentItem",))
        return field

    def in_rhs(self, dataset: str, field: str, op: str, pos: int) -> Condition:
        if self.is_word("CURRENTITEM"):
            if dataset != "Items":
                raise self.fail("CurrentItem can be compared with Items fields only")
            if op == "NOT IN":
                raise self.fail("CurrentItem fields take IN, not NOT IN")
            return Condition(dataset, field, op, current=self.current_field(), pos=pos)
        self.expect_punct("(", "( and a list of quoted values, ($PLACEHOLDER) or CurrentItem.F")
        if self.tok.kind == "placeholder":
            if op == "NOT IN":
                raise self.fail("placeholders cannot be used with NOT IN (use IN with EXCLUDE)")
            name = self.next().text[1:]
            self.expect_punct(")", f"a ) after ${name}")
            return Condition(dataset, field, op, placeholder=name, pos=pos)
        values = [self.list_value(dataset, field)]
        while self.punct(","):
            self.next()
            values.append(self.list_value(dataset, field))
        self.expect_punct(")", ", or ) in the value list")
        return Condition(dataset, field, op, values=tuple(values), pos=pos)

    def list_value(self, dataset: str, field: str) -> str:
        tok = self.tok
        if tok.kind == "string":
            self.next()
            return tok.text
        if self.punct("*"):
            if dataset != "Interactions":
                raise self.fail("* (every event type) works with Interactions.EVENT_TYPE only")
            self.next()
            return "*"
        if tok.kind == "placeholder":
            raise self.fail("a placeholder must be the only value in its list")
        raise self.expected('a quoted value like "Action"')

    def cmp_rhs(self, field: str, op: str, pos: int) -> Condition:
        if self.is_word("CURRENTITEM"):
            return Condition("Items", field, op, current=self.current_field(), pos=pos)
        paren = self.punct("(")
        if paren:
            self.next()
        tok = self.tok
        if tok.kind == "number":
            self.next()
            cond = Condition("Items", field, op, number=float(tok.text), pos=pos)
        elif tok.kind == "placeholder":
            self.next()
            cond = Condition("Items", field, op, placeholder=tok.text[1:], pos=pos)
        else:
            raise self.expected(f"a number, $PLACEHOLDER or CurrentItem.FIELD after {op}")
        if paren:
            self.expect_punct(")", "a )")
        return cond


def parse_filter(text: str, source: str = "--filter") -> Filter:
    """Parse a filter expression; FilterSyntaxError (a usage error) names what is wrong."""
    if not text.strip():
        raise FilterSyntaxError(source, text, 0, "the filter expression is empty")
    if len(text) > MAX_LENGTH:
        raise FilterSyntaxError(
            source,
            text,
            MAX_LENGTH,
            f"the filter has {len(text)} characters (at most {MAX_LENGTH})",
        )
    return _Parser(text, source).parse()


def check_target(filt: Filter, answers_users: bool, recipe: str, source: str) -> None:
    """A filter of the other kind than the job's is a usage error (one line): ItemID
    expressions take items out of lists, UserID ones select a segment job's users."""
    article = "an" if recipe[0] in "aeio" else "a"
    if answers_users and filt.target == ITEM_ID:
        raise UsageError(
            f"{source}: an ItemID filter takes items out of recommendations, but {article} "
            f"{recipe} solution answers users (a batch segment job): filter them with "
            "INCLUDE or EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN (...)"
        )
    if not answers_users and filt.target == USER_ID:
        raise UsageError(
            f"{source}: a UserID filter selects the users of a batch segment job, but "
            f"{article} {recipe} solution answers items: filter them with INCLUDE or "
            "EXCLUDE ItemID WHERE ..."
        )

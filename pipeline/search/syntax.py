"""The query language of ``newswire search`` and standing queries: Elasticsearch's
``simple_query_string`` syntax, parsed here once, strictly, for both.

Elasticsearch's own parser is lenient (an unclosed quote or a dangling ``|`` is silently
reinterpreted), so a typo in a standing query would quietly change its meaning. Every
query goes through :func:`parse_query` first: a malformed one is refused with the reason
and the position; a valid one is passed on unchanged, so its meaning is the engine's. The
tree it returns is what the alert matcher indexes (:mod:`pipeline.alerts.presearch`).

Syntax: words (whitespace = AND), ``+`` AND, ``|`` OR, ``-`` NOT before an operand,
``"a phrase"`` with an optional ``~N`` slop, ``word*`` prefix, ``word~N`` fuzzy,
``( ... )`` groups, ``\\`` escapes the next character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.errors import QuerySyntaxError

Op = Literal["and", "or"]
_SPECIAL = frozenset('"|+()')


@dataclass(frozen=True)
class Term:
    """One word as typed (escapes resolved); ``prefix`` for ``word*``, ``fuzzy`` for ``word~N``."""

    text: str
    position: int
    prefix: bool = False
    fuzzy: bool = False


@dataclass(frozen=True)
class Phrase:
    """A quoted phrase; ``slop`` from ``"..."~N``."""

    text: str
    position: int
    slop: int = 0


@dataclass(frozen=True)
class Not:
    """``-operand``."""

    child: Node
    position: int


@dataclass(frozen=True)
class Group:
    """Operands joined by operators (``ops[i]`` joins ``items[i]`` and ``items[i + 1]``);
    Elasticsearch applies them left to right, so a group mixing AND and OR is read by
    callers without assuming a precedence."""

    items: tuple[Node, ...]
    ops: tuple[Op, ...]
    position: int


Node = Term | Phrase | Not | Group


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def error(self, message: str, position: int | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(self.text, message, self.i if position is None else position)

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def group(self, start: int, closing: bool) -> Group:
        items: list[Node] = []
        ops: list[Op] = []
        pending: Op | None = None
        explicit_at: int | None = None
        while True:
            self.skip_space()
            ch = self.peek()
            if ch == "" or ch == ")":
                break
            if ch in "|+":
                if not items:
                    raise self.error(f"{ch!r} has no operand before it")
                if explicit_at is not None:
                    raise self.error(f"{ch!r} follows another operator")
                pending = "or" if ch == "|" else "and"
                explicit_at = self.i
                self.i += 1
                continue
            node = self.operand()
            if items:
                ops.append(pending or "and")
            items.append(node)
            pending, explicit_at = None, None
        if explicit_at is not None:
            raise self.error(f"{self.text[explicit_at]!r} has no operand after it", explicit_at)
        if closing:
            if self.peek() != ")":
                raise self.error("'(' is never closed", start)
            if not items:
                raise self.error("empty group '()'", start)
            self.i += 1
        elif self.peek() == ")":
            raise self.error("')' without a matching '('")
        return Group(tuple(items), tuple(ops), start)

    def operand(self) -> Node:
        start = self.i
        ch = self.peek()
        if ch == "-":
            self.i += 1
            if self.peek() == "" or self.peek().isspace() or self.peek() in "|+)":
                raise self.error("'-' has no operand after it", start)
            return Not(self.operand(), start)
        if ch == "(":
            self.i += 1
            return self.group(start, closing=True)
        if ch == '"':
            return self.phrase()
        return self.term()

    def number_after_tilde(self) -> int | None:
        """``~N`` (N digits, optional) after a phrase or word; None when there is no ``~``."""
        if self.peek() != "~":
            return None
        self.i += 1
        digits = self.i
        while self.peek().isdigit():
            self.i += 1
        return int(self.text[digits : self.i]) if self.i > digits else 0

    def phrase(self) -> Phrase:
        start = self.i
        self.i += 1
        chars: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                raise self.error("unclosed quote: '\"' is never closed", start)
            if ch == "\\":
                self.i += 1
                if self.peek() == "":
                    raise self.error("'\\' at the end escapes nothing", self.i - 1)
                chars.append(self.peek())
                self.i += 1
                continue
            self.i += 1
            if ch == '"':
                break
            chars.append(ch)
        text = "".join(chars)
        if not text.strip():
            raise self.error("empty phrase", start)
        slop = self.number_after_tilde()
        return Phrase(text, start, slop or 0)

    def term(self) -> Term:
        start = self.i
        chars: list[str] = []
        while True:
            ch = self.peek()
            if ch == "" or ch.isspace() or ch in _SPECIAL or ch == "~":
                break
            if ch == "\\":
                self.i += 1
                if self.peek() == "":
                    raise self.error("'\\' at the end escapes nothing", self.i - 1)
                chars.append(self.peek())
                self.i += 1
                continue
            chars.append(ch)
            self.i += 1
        text = "".join(chars)
        prefix = text.endswith("*") and not self.text[: self.i].endswith("\\*")
        if prefix:
            text = text[:-1]
        fuzzy = self.number_after_tilde() is not None
        if not text:
            raise self.error("an operand is missing here", start)
        return Term(text, start, prefix=prefix, fuzzy=fuzzy)


def parse_query(text: str) -> Group:
    """The query's tree; raises :class:`QuerySyntaxError` (message and 0-based position)
    for what the engine would silently reinterpret. An empty query is an empty group."""
    parser = _Parser(text)
    tree = parser.group(0, closing=False)
    if parser.i < len(text):  # only a stray ')' stops the top level early
        raise parser.error("')' without a matching '('")
    return tree


__all__ = ["Group", "Node", "Not", "Op", "Phrase", "Term", "parse_query"]

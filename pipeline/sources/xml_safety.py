"""Refuse feed XML that declares dangerous entities, before any parser expands them.

feedparser parses with expat through ``xml.sax`` with external general entities
switched off, and strips "unsafe" ENTITY declarations with a regular expression before
parsing. That regular expression only sees declarations that start a line, so
:func:`check_xml_safety` refuses, before feedparser sees the bytes, any document whose
DOCTYPE declares external, parameter or nested (expanding) entities (read by expat up to
the root element): billion laughs and XXE never reach a parser. Pure, no I/O.
"""

from __future__ import annotations

import re
from xml.parsers import expat

from pipeline.errors import BadInputError
from pipeline.sources.encoding import expat_input

#: ENTITY declarations allowed in an internal DTD subset (all must be plain text values).
MAX_ENTITY_DECLARATIONS = 64

_ENTITY_REF = re.compile(r"[&%](?!#)[^\s;&%]+;")


class _RootReachedError(Exception):
    """The root element starts: the DTD, if any, is behind us."""


def check_xml_safety(content: bytes, *, source: str) -> None:
    """Refuse documents whose DTD declares external, parameter or expanding entities.

    Raises :class:`BadInputError` naming ``source``; plain-text entities such as
    ``<!ENTITY nbsp "&#160;">`` stay allowed. Expat reads the prolog (so comments,
    processing instructions and quoting are read as XML, however long) and stops at the
    root element. A prolog expat cannot read is left to the feed parser, whose strict
    parser fails on it too and whose loose parser expands no DTD.
    """
    declared = 0

    def on_entity(
        name: str,
        is_parameter: bool,
        value: str | None,
        base: str | None,
        system_id: str | None,
        public_id: str | None,
        notation: str | None,
    ) -> None:
        nonlocal declared
        declared += 1
        if declared > MAX_ENTITY_DECLARATIONS:
            raise BadInputError(source, f"unsafe XML: over {MAX_ENTITY_DECLARATIONS} entities")
        if is_parameter:
            raise BadInputError(source, f"unsafe XML: parameter entity {name!r}")
        if system_id or public_id or notation:
            raise BadInputError(source, f"unsafe XML: external entity {name!r}")
        if value and _ENTITY_REF.search(value):
            raise BadInputError(source, f"unsafe XML: entity {name!r} expands other entities")

    def on_root(*_: object) -> None:
        raise _RootReachedError

    # UTF-16/32 documents are read as the UTF-8 they decode to (:mod:`.encoding`);
    # byte-oriented ones as Latin-1 (ASCII markup is all that matters here). The
    # override wins over any declared encoding, which expat could not always load.
    text, override = expat_input(content)
    parser = expat.ParserCreate(override)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = on_entity
    parser.StartElementHandler = on_root
    try:
        parser.Parse(text, True)
    except (_RootReachedError, expat.ExpatError, ValueError, LookupError):
        return


__all__ = ["MAX_ENTITY_DECLARATIONS", "check_xml_safety"]

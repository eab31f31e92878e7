"""UTF-16/32 feeds parse like UTF-8 ones; oddly encoded documents never raise."""

from __future__ import annotations

import random

import pytest

from pipeline.errors import BadInputError
from pipeline.sources.encoding import detect, expat_input, to_utf8
from pipeline.sources.parse import ParsedFeed, check_xml_safety, parse_feed, parse_feed_safely

FEED = (
    '<?xml version="1.0" encoding="{enc}"?>\n'
    '<rss version="2.0"><channel><title>Zürich Tägliche</title>'
    "<item><title>Ünïcode 東京 😀</title><link>https://example.org/a</link>"
    "<description>Grüße</description></item>"
    "<item><title>Second</title><link>https://example.org/b</link></item>"
    "</channel></rss>"
)
BOMS = {
    "utf-16-le": b"\xff\xfe",
    "utf-16-be": b"\xfe\xff",
    "utf-32-le": b"\xff\xfe\x00\x00",
    "utf-32-be": b"\x00\x00\xfe\xff",
}
URL = "https://example.org/feed"


def _titles(parsed: ParsedFeed) -> list[str | None]:
    return [a.title for a in parsed.articles]


def _utf8_reference() -> ParsedFeed:
    return parse_feed(FEED.format(enc="utf-8").encode("utf-8"), feed_url=URL)


@pytest.mark.parametrize("codec", sorted(BOMS))
@pytest.mark.parametrize("bom", [True, False])
@pytest.mark.parametrize("declared", ["UTF-16", "utf-32", "UTF-16LE", "UTF-8", "iso-8859-1"])
def test_wide_feeds_parse_like_utf8(codec: str, bom: bool, declared: str) -> None:
    """BOM or not, whatever the declaration says (even a wrong one), the same articles."""
    data = (BOMS[codec] if bom else b"") + FEED.format(enc=declared).encode(codec)
    parsed = parse_feed(data, feed_url=URL)
    reference = _utf8_reference()
    assert _titles(parsed) == _titles(reference) == ["Ünïcode 東京 😀", "Second"]
    assert parsed.title == "Zürich Tägliche"
    assert [a.summary for a in parsed.articles] == [a.summary for a in reference.articles]
    assert parsed.encoding == codec


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_detect_without_bom(codec: str) -> None:
    assert detect(FEED.format(enc="x").encode(codec)) == (codec, 0)
    assert detect(BOMS[codec] + "<rss/>".encode(codec)) == (codec, len(BOMS[codec]))


def test_detect_eight_bit() -> None:
    assert detect(b"<?xml version='1.0'?><rss/>") == (None, 0)
    assert detect(b"\xef\xbb\xbf<rss/>") == ("utf-8", 3)


@pytest.mark.parametrize("codec", sorted(BOMS))
def test_unsafe_entities_refused_in_wide_documents(codec: str) -> None:
    """The safety check reads a UTF-16/32 prolog (before, UTF-32 ones slipped through)."""
    doc = (
        '<?xml version="1.0" encoding="{}"?>\n'
        '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        "<rss><channel><title>&xxe;</title></channel></rss>"
    )
    data = BOMS[codec] + doc.format(codec.upper()).encode(codec)
    with pytest.raises(BadInputError, match="external entity"):
        check_xml_safety(data, source=URL)
    with pytest.raises(BadInputError, match="external entity"):
        parse_feed(data, feed_url=URL)


def test_json_feed_in_utf16() -> None:
    doc = '{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": '
    doc += '[{"id": "1", "url": "https://example.org/j", "title": "Jörg"}]}'
    parsed = parse_feed(b"\xff\xfe" + doc.encode("utf-16-le"), feed_url=URL)
    assert _titles(parsed) == ["Jörg"]


def test_eight_bit_document_declaring_utf16_is_read_by_its_bytes() -> None:
    data = FEED.format(enc="UTF-16").encode("utf-8")
    assert _titles(parse_feed(data, feed_url=URL)) == ["Ünïcode 東京 😀", "Second"]
    assert b'encoding="utf-8"' in to_utf8(data).content


def test_malformed_wide_units_become_replacement_characters() -> None:
    data = b"\xff\xfe" + FEED.format(enc="UTF-16").encode("utf-16-le")
    broken = data.replace("Second".encode("utf-16-le"), b"\x00\xd8S\x00")  # lone surrogate
    parsed = parse_feed(broken + b"\x00", feed_url=URL)  # and an odd trailing byte
    assert _titles(parsed)[0] == "Ünïcode 東京 😀"
    assert "\ufffd" in (_titles(parsed)[1] or "")
    utf32 = b"\xff\xfe\x00\x00" + FEED.format(enc="UTF-32").encode("utf-32-le")
    bad = utf32.replace("Second".encode("utf-32-le"), b"\x00\xd8\x00\x00\xff\xff\xff\x7f")
    assert "\ufffd" in (_titles(parse_feed(bad, feed_url=URL))[1] or "")


def test_expat_input_forces_an_encoding() -> None:
    assert expat_input(b"<rss/>") == (b"<rss/>", "iso-8859-1")
    content, forced = expat_input(b"\xfe\xff" + "<rss/>".encode("utf-16-be"))
    assert (content, forced) == (b"<rss/>", "utf-8")


ODD = [
    b"\xff\xfe",  # a BOM and nothing else
    b"\x00\x00\xfe\xff\x00",
    b"\xfe\xff" + b"\x00<\x00?\x00x",  # truncated declaration
    b'<?xml version="1.0" encoding="x-no-such-codec"?><rss><channel><title>t</title></channel>'
    b"</rss>",
    b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<?xml version="1.0" encoding="ebcdic-cp-us"?><rss/>',
    b'<?xml version="1.0" encoding="utf-7"?><rss><channel><title>+AGEAYgBj-</title></channel>'
    b"</rss>",
    b"\xff\xfe" + FEED.format(enc="UTF-16").encode("utf-16-be"),  # BOM says LE, bytes BE
    b"\xef\xbb\xbf" + FEED.format(enc="UTF-16").encode("utf-16-le"),  # UTF-8 BOM over UTF-16
    FEED.format(enc="UTF-8").encode("utf-16-le")[:-3],
    b"\x00" * 64,
    b"<\x00\x00\x00" * 3,
]


@pytest.mark.parametrize("data", ODD)
def test_oddly_encoded_documents_never_raise(data: bytes) -> None:
    result = parse_feed_safely(data, feed_url=URL)
    assert isinstance(result, ParsedFeed | BadInputError)


def test_random_mutations_never_raise() -> None:
    """Byte flips, cuts and BOM swaps of wide feeds: a result or a BadInputError."""
    rng = random.Random(16)
    seeds = [BOMS[c] + FEED.format(enc=c).encode(c) for c in BOMS]
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randrange(len(data))
            if op < 0.5:
                data[pos] = rng.randrange(256)
            elif op < 0.8:
                del data[pos : pos + rng.randint(1, 5)]
            else:
                data[0:0] = rng.choice(list(BOMS.values()))
        result = parse_feed_safely(bytes(data), feed_url=URL)
        assert isinstance(result, ParsedFeed | BadInputError)

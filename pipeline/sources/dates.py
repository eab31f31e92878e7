"""Dates in feeds -> aware UTC datetimes: feedparser's parsed structs, RFC 3339 strings
(JSON Feed) and RFC 822-like dates with non-English names. Pure, no I/O."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser


def struct_to_datetime(value: Any) -> datetime | None:
    """A feedparser ``*_parsed`` value (a UTC ``time.struct_time``) as an aware datetime."""
    if value is None:
        return None
    try:
        stamp = calendar.timegm((*tuple(value)[:6], 0, 0, 0))
        return datetime.fromtimestamp(stamp, UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_iso_datetime(value: Any) -> datetime | None:
    """An RFC 3339 / ISO-8601 string as a UTC datetime; naive values are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        struct = feedparser.datetimes._parse_date(value)
        return struct_to_datetime(struct)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_MONTHS: dict[str, int] = {}
for _number_, _names in enumerate(
    [
        "jan janv janvier januar janeiro enero gen gennaio янв января",
        "feb fev fév févr février februar fevereiro febrero febbraio фев февраля",
        "mar mär mrz mars märz março marzo мар марта",
        "apr abr avr avril april abril aprile апр апреля",
        "may mai mayo maio mag maggio мая май",
        "jun juin juni junho junio giu giugno июн июня",
        "jul juil juillet juli julho julio lug luglio июл июля",
        "aug ago août august agosto авг августа",
        "sep set sept septembre september setembro septiembre settembre сен сентября",
        "oct okt out ott octobre oktober outubro octubre ottobre окт октября",
        "nov novembre november novembro noviembre ноя ноября",
        "dec dez déc dic décembre dezember dezembro diciembre dicembre дек декабря",
    ],
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number_
_LOCALIZED_DATE = re.compile(
    r"(?P<day>\d{1,2})\.?\s+(?P<month>[^\W\d_]+)\.?,?\s+(?P<year>\d{4}),?\s+"
    r"(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?\s*(?P<tz>[+-]\d{2}:?\d{2}|[A-Za-z]{1,5})?"
)
_TZ_NAMES = {"gmt": 0, "utc": 0, "ut": 0, "z": 0, "cet": 60, "cest": 120, "brt": -180}


def parse_localized_date(value: Any) -> datetime | None:
    """RFC 822-like dates with non-English names ("Seg, 24 Set 2018 19:42:40 -0300"),
    which feedparser leaves unparsed; unknown zone names count as UTC."""
    if not isinstance(value, str):
        return None
    match = _LOCALIZED_DATE.search(value)
    if not match:
        return None
    month = _MONTHS.get(match.group("month").lower())
    if month is None:
        return None
    tz = (match.group("tz") or "").lower()
    if tz[:1] in "+-" and tz:
        digits = tz[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + int(digits[2:])) * (1 if tz[0] == "+" else -1)
    else:
        offset = _TZ_NAMES.get(tz, 0)
    try:
        local = datetime(
            int(match.group("year")), month, int(match.group("day")), int(match.group("h")),
            int(match.group("m")), int(match.group("s") or 0), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None
    return local - timedelta(minutes=offset)


__all__ = ["parse_iso_datetime", "parse_localized_date", "struct_to_datetime"]

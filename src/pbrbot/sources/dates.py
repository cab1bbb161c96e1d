"""Dates from any source, normalised to ISO 8601."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from dateutil import parser as dateparser

from pbrbot.timeframe import APPROX


def parse_date(value) -> str | None:
    """YYYY-MM-DD from an ISO string, an RFC 822 feed date, a struct_time, a date or datetime; None if
    unknown. An EDTF approximate date ("2013-03~": about March 2013, see timeframe.py) is kept as it is."""
    if isinstance(value, str) and APPROX.match(value.strip()):
        return value.strip()
    dt = parse_datetime(value)
    return dt.date().isoformat() if dt else None


def parse_datetime(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, time.struct_time):
        dt = datetime(*value[:6], tzinfo=UTC)
    else:
        try:
            dt = dateparser.parse(str(value))
        except (ValueError, OverflowError):
            return None
    return dt

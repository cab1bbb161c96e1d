"""Questions about time: the period a question names ("in 2013", "before 2015", "since Transforming
Rehabilitation", "last year", "latest"), which posts fall in it, and how post dates are shown.

Post dates are ISO days ("2013-06-13") or, where the source gave none and the date was estimated from
evidence, an EDTF approximate date (ISO 8601-2: "2013-03~" is "about March 2013", "2013~" "about 2013"):
shown as "c. March 2013", placed mid-month (mid-year) when compared.

No language model: explicit phrases are read with regular expressions; named events come from
timeline.toml; relative phrases are computed from `today` (injectable, so a test pins the clock).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import resources

from dateutil.relativedelta import relativedelta

APPROX = re.compile(r"^(\d{4})(?:-(\d{2}))?~$")
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
_MONTH = r"(?P<month>" + "|".join(m for m in MONTHS) + "|" + "|".join(m[:3] for m in MONTHS) + r")"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "a": 1, "an": 1, "few": 3, "couple of": 2}

LATEST = re.compile(r"\b(?:(?:the\s+)?(?:very\s+)?(?:latest|newest|most\s+recent(?:ly)?)|recent(?:ly)?|"
                    r"(?:these|nowadays)\s+days|nowadays|(?:right\s+)?now|currently|up[\s-]to[\s-]date)\b",
                    re.IGNORECASE)


def today_utc() -> date:
    return datetime.now(UTC).date()


# -- post dates ----------------------------------------------------------------------------------
def post_day(value: str | None) -> date | None:
    """The day a stored date stands for (an approximate month: its 15th; an approximate year: 1 July)."""
    if not value:
        return None
    m = APPROX.match(value.strip())
    if m:
        return date(int(m[1]), int(m[2] or 7), 15 if m[2] else 1)
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def is_estimated(value: str | None) -> bool:
    return bool(value and APPROX.match(value.strip()))


def show_date(value: str | None) -> str:
    """A stored date for people: "4 March 2013", or "c. March 2013" for an estimated one; "" when none."""
    if not value:
        return ""
    m = APPROX.match(value.strip())
    if m:
        return f"c. {MONTHS[int(m[2]) - 1].title()} {m[1]}" if m[2] else f"c. {m[1]}"
    day = post_day(value)
    return f"{day.day} {day:%B %Y}" if day else value


# -- periods -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """Posts dated from `start` to `end` (inclusive; None: open). `latest`: newer posts first."""

    start: date | None = None
    end: date | None = None
    label: str = ""
    latest: bool = False

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def holds(self, value: str | None) -> bool:
        """Whether a post of this stored date is of the period (undated posts are of no bounded period)."""
        if not self.bounded:
            return True
        day = post_day(value)
        if day is None:
            return False
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Event:
    name: str
    aliases: tuple[str, ...]
    day: date
    what: str

    @property
    def forms(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@lru_cache(maxsize=1)
def events() -> tuple[Event, ...]:
    data = tomllib.loads(resources.files("pbrbot").joinpath("timeline.toml").read_text(encoding="utf-8"))
    return tuple(Event(e["name"], tuple(e.get("aliases", ())), date.fromisoformat(e["date"]),
                       e.get("what", "")) for e in data.get("event", []))


def _event_pattern() -> str:
    forms = sorted({f for e in events() for f in e.forms}, key=len, reverse=True)
    return r"(?P<event>" + "|".join(re.escape(f).replace(r"\ ", r"\s+") for f in forms) + r")"


def _event(text: str) -> Event | None:
    text = " ".join(text.lower().split())
    for e in events():
        if any(text == f.lower() or text == "the " + f.lower() for f in e.forms):
            return e
    return None


def _year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def _month_bounds(year: int, month: int) -> tuple[date, date]:
    start = date(year, month, 1)
    return start, start + relativedelta(months=1) - relativedelta(days=1)


def _month(name: str) -> int:
    return next(i for i, m in enumerate(MONTHS, 1) if m.startswith(name.lower()[:3]))


def _count(text: str) -> int:
    text = text.lower().strip()
    return int(text) if text.isdigit() else _NUMBER_WORDS.get(text, 1)


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str], date], "Period | None"]]


def _rules() -> list[_Rule]:
    ev = _event_pattern()
    i = re.IGNORECASE

    def year_month(m: re.Match[str]) -> tuple[int, int | None]:
        return (int(m["year"]), _month(m["month"])) if m.groupdict().get("month") else (int(m["year"]), None)

    def bounds(m: re.Match[str]) -> tuple[date, date]:
        y, mo = year_month(m)
        return _month_bounds(y, mo) if mo else _year_bounds(y)

    def when(m: re.Match[str]) -> str:
        y, mo = year_month(m)
        return f"{MONTHS[mo - 1].title()} {y}" if mo else str(y)

    month_year = rf"(?:{_MONTH}\s+)?{_YEAR}"
    return [
        (re.compile(r"\b(?:between\s+|from\s+)?(?P<a>(?:19|20)\d\d)\s*(?:-|–|to|until|and)\s*"
                    r"(?P<b>(?:19|20)\d\d)\b", i),
         lambda m, t: Period(date(int(m["a"]), 1, 1), date(int(m["b"]), 12, 31),
                             f"Posts from {m['a']} to {m['b']}")),
        (re.compile(rf"\b(?:before|prior\s+to|earlier\s+than|up\s+to)\s+{month_year}\b", i),
         lambda m, t: Period(None, bounds(m)[0] - relativedelta(days=1), f"Posts before {when(m)}")),
        (re.compile(rf"\b(?:until|till|by\s+the\s+end\s+of)\s+{month_year}\b", i),
         lambda m, t: Period(None, bounds(m)[1], f"Posts up to {when(m)}")),
        (re.compile(rf"\b(?:after)\s+{month_year}\b", i),
         lambda m, t: Period(bounds(m)[1] + relativedelta(days=1), None, f"Posts after {when(m)}")),
        (re.compile(rf"\bsince\s+{month_year}(?:\s+on(?:wards?)?)?\b", i),
         lambda m, t: Period(bounds(m)[0], None, f"Posts since {when(m)}")),
        (re.compile(rf"\b(?:in|during|from|over|throughout|back\s+in)\s+(?:the\s+year\s+)?"
                    rf"{month_year}\b", i),
         lambda m, t: Period(*bounds(m), f"Posts from {when(m)}")),
        (re.compile(rf"\b(?P<rel>since|after|before|prior\s+to|until)\s+(?:the\s+(?:start|launch|beginning|"
                    rf"introduction)\s+of\s+)?{ev}(?![\w-])", i),
         lambda m, t: _event_period(m)),
        (re.compile(r"\b(?:in\s+|over\s+|during\s+|within\s+)?the\s+(?:last|past)\s+"
                    r"(?P<n>\d+|one|two|three|four|five|six|seven|eight|nine|ten|few|couple\s+of)?"
                    r"\s*(?P<unit>years?|months?)\b", i),
         lambda m, t: _recent_period(m, t)),
        (re.compile(r"\b(?:in\s+|during\s+)?last\s+year\b", i),
         lambda m, t: Period(*_year_bounds(t.year - 1), f"Posts from last year ({t.year - 1})")),
        (re.compile(r"\b(?:in\s+|during\s+)?this\s+year\b", i),
         lambda m, t: Period(*_year_bounds(t.year), f"Posts from this year ({t.year})")),
        (re.compile(r"\b(?:in\s+|during\s+)?last\s+month\b", i),
         lambda m, t: _last_month(t)),
        (re.compile(rf"\b{_YEAR}(?:'s\b|(?=\s+(?:posts?|articles?|blogs?|pieces?|writing)\b))", i),
         lambda m, t: Period(*_year_bounds(int(m["year"])), f"Posts from {m['year']}")),
    ]


def _event_period(m) -> Period | None:
    event = _event(m["event"])
    if event is None:
        return None
    rel = " ".join(m["rel"].lower().split())
    shown = f"{event.name} ({show_date(event.day.isoformat())})"
    if rel in ("since", "after"):
        return Period(event.day, None, f"Posts since {shown}")
    return Period(None, event.day - relativedelta(days=1), f"Posts before {shown}")


def _last_month(today: date) -> Period:
    month = today - relativedelta(months=1)
    return Period(*_month_bounds(month.year, month.month), f"Posts from last month ({month:%B %Y})")


def _recent_period(m, today: date) -> Period:
    n = _count(m["n"] or "1")
    unit = m["unit"].lower().rstrip("s")
    start = today - (relativedelta(years=n) if unit == "year" else relativedelta(months=n))
    many = f"{n} {unit}s" if n != 1 else unit
    return Period(start, today, f"Posts from the last {many} (since {show_date(start.isoformat())})")


@lru_cache(maxsize=1)
def _compiled() -> list[_Rule]:
    return _rules()


def _tidy(text: str) -> str:
    text = re.sub(r"\s+([?.!,;:])", r"\1", re.sub(r"\s{2,}", " ", text)).strip(" ,;:-")
    text = re.sub(r"\b(?:on|about|from|of|in|the|for)\s*([?.!]?)$", r"\1", text).strip()
    return text


def _find(question: str, today: date) -> tuple[Period | None, str, list[str]]:
    period: Period | None = None
    rest = question
    said: list[str] = []
    for pattern, make in _compiled():
        m = pattern.search(rest)
        if m is None:
            continue
        found = make(m, today)
        if found is None:
            continue
        period = found
        said.append(m.group().strip())
        rest = rest[:m.start()] + " " + rest[m.end():]
        break
    latest = LATEST.search(rest)
    if latest:
        said.append(latest.group().strip())
        rest = rest[:latest.start()] + " " + rest[latest.end():]
        label = f"{period.label}, newest first" if period else "Newest posts first"
        period = Period(period.start if period else None, period.end if period else None, label, latest=True)
    return period, rest, said


def parse(question: str, today: date | None = None) -> tuple[Period | None, str]:
    """The period the question names (None when it names none) and the question without the time phrase
    (what to search for)."""
    period, rest, _ = _find(question, today or today_utc())
    if period is None:
        return None, question
    rest = _tidy(rest)
    return period, rest if len(re.findall(r"\w+", rest)) >= 1 else question


def phrases(question: str) -> list[str]:
    """The time phrases of a question as written ("in 2013", "the latest"): a follow-up keeps them."""
    return _find(question, today_utc())[2]


def posts_in(store, period: Period) -> set[int]:
    """Ids of the stored posts of a bounded period (dated posts only)."""
    return {pid for pid, value in store.post_dates() if period.holds(value)}


def dated_posts(store) -> set[int]:
    return {pid for pid, _ in store.post_dates()}

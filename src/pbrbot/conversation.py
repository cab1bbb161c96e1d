"""Conversations: a question answered with the earlier turns and the period it names.

`Conversation` reads a follow-up with the earlier turns (followups.py) and leans on the posts they
already quoted (answer.PREFER_BOOST). Time (timeframe.py): a period the question names filters the
posts; "latest" puts the newest first; quotes of differently dated posts that give figures on one point
are labelled with their dates, the newer first (`over_time`).

The earlier turns, and the table that keeps a chat conversation's, are turns.py's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING

from pbrbot import timeframe
from pbrbot.errors import PbrbotError
from pbrbot.followups import GENERIC, read
from pbrbot.glossary import Glossary
from pbrbot.models import Answer, Gloss, Quote
from pbrbot.questions import QUESTION_CHARS, normalise, read_part, word_stems
from pbrbot.turns import Turn

if TYPE_CHECKING:
    from pbrbot.tuning import Answers, Asker

LATEST_POOL = 8  # quotes drawn for a "latest" question, of which the newest strong ones are shown
LATEST_FLOOR = 0.25  # a quote counts for "latest" when it weighs this share of the best quote
LATEST_TOPIC_HITS = 8  # posts of a topic that `latest` sorts by date
TOPIC_FLOOR = 0.3  # ... a post found by meaning alone needs this dense score to count as on the topic


class Conversation:
    """Answers questions with the earlier turns (follow-ups) and the periods they name (time)."""

    def __init__(self, answers: Answers, store, glossary: Glossary | None, searcher=None,
                 today: Callable[[], date] = timeframe.today_utc):
        """`answers`: tuning.Answers (the answerer with curation and votes); `store`: store.Store (for post
        dates and quoted posts);
        `searcher`: search.Searcher (only for `latest`); `today`: the clock relative dates count from."""
        self.answers = answers
        self.store = store
        self.glossary = glossary
        self.searcher = searcher
        self.today = today

    def ask(self, question: str, turns: Sequence[Turn] = (), n: int = 3,
            asker: Asker | None = None) -> Answer:
        return self.explain(question, turns, n, asker)[0]

    def explain(self, question: str, turns: Sequence[Turn] = (), n: int = 3,
                asker: Asker | None = None) -> tuple[Answer, dict]:
        """The answer read with the earlier `turns` and the period the question names, and why it ranked
        as it did (tuning.Answers: curation and votes applied; the question logged when `asker` is given)."""
        read_chars = QUESTION_CHARS if len(normalise(question)) > QUESTION_CHARS else None
        question = read_part(question)
        reading = read(question, turns, self.glossary)
        period, query = timeframe.parse(reading.question, self.today())
        posts = None
        if period is not None and period.bounded:
            posts = timeframe.posts_in(self.store, period)
        elif period is not None and period.latest:
            posts = timeframe.dated_posts(self.store) or None  # an archive with no dates: as it comes
        prefer = self._quoted(turns) if reading.follow_up else set()
        latest = period is not None and period.latest
        answer, why = self.answers.explain(query, max(n, LATEST_POOL) if latest else n, asker, posts=posts,
                                           prefer=prefer)
        quotes = answer.quotes
        if latest and quotes:
            best = max(q.score for q in quotes)
            strong = [q for q in quotes if q.score >= LATEST_FLOOR * best]
            quotes = sorted(strong, key=lambda q: timeframe.post_day(q.date) or date.min, reverse=True)[:n]
        quotes = over_time(quotes)
        glosses = [Gloss(term=t.name, gloss=t.gloss) for t in self.glossary.asked_about(reading.question)] \
            if self.glossary is not None else []
        return answer.model_copy(update={"question": question, "quotes": quotes, "read_chars": read_chars,
                                         "taken_as": reading.taken_as, "glosses": glosses,
                                         "period": period.label if period is not None else None}), why

    def _quoted(self, turns: Sequence[Turn]) -> set[int]:
        ids = set()
        for turn in list(turns)[-2:]:
            for quote in turn.quotes:
                row = self.store.get_post_by_url(quote["url"])
                if row is not None:
                    ids.add(row["id"])
        return ids

    def latest(self, topic: str = "", n: int = 5) -> list[dict]:
        """The newest dated posts on a topic (all topics when empty): [{title, url, date, shown}]."""
        dated = timeframe.dated_posts(self.store)
        if topic.strip():
            if self.searcher is None:
                raise PbrbotError("latest on a topic needs a searcher")
            period, rest = timeframe.parse(topic, self.today())
            if period is not None and period.bounded:
                dated &= timeframe.posts_in(self.store, period)
            hits = self.searcher.search(rest or topic, k=LATEST_TOPIC_HITS, per_post=1, posts=dated)
            ids = [h.post_id for h in hits
                   if h.keyword_rank is not None or (h.dense_score or 0) >= TOPIC_FLOOR]
        else:
            ids = list(dated)
        rows = [self.store.get_post(i) for i in ids]
        rows = [r for r in rows if r is not None and (r.get("kind") or "post") == "post"]
        rows.sort(key=lambda r: (timeframe.post_day(r["date"]) or date.min, r["id"]), reverse=True)
        return [{"title": r["title"], "url": r["url"], "date": r["date"],
                 "shown": timeframe.show_date(r["date"])} for r in rows[:n]]


_FIGURE = re.compile(r"(?P<money>[£$€]\s?\d)|\b\d[\d,]*(?:\.\d+)?\s*(?:(?P<pct>%|per\s?cent|percent)|"
                     r"(?:million|billion|bn|m|k)?\s+(?P<unit>[a-z]{3,}))", re.IGNORECASE)


def _figures(text: str) -> set[str]:
    """The kinds of figure a text gives: "%" (a rate), "£" (a sum), or the stem of the word a number counts
    ("32 months" -> month). Years and list numbers ("12. Disgraced ...") count nothing."""
    kinds = set()
    for m in _FIGURE.finditer(text):
        if m["money"]:
            kinds.add("£")
        elif m["pct"]:
            kinds.add("%")
        elif m["unit"] and not re.fullmatch(r"(?:19|20)\d\d", m.group().split()[0]) \
                and m["unit"].lower() not in GENERIC:
            kinds |= word_stems(m["unit"])
    return kinds


def over_time(quotes: list[Quote]) -> list[Quote]:
    """Quotes of differently dated posts that give figures of one kind on the same point (two shared content
    words, and a rate, a sum or a count of the same thing in each): the newer is put first and both are
    labelled with their dates."""
    quotes = list(quotes)
    figures = {q.text: _figures(q.text) for q in quotes}  # by text: a pair swapped below keeps its figures
    for i in range(len(quotes)):
        for j in range(i + 1, len(quotes)):
            a, b = quotes[i], quotes[j]
            da, db = timeframe.post_day(a.date), timeframe.post_day(b.date)
            if a.url == b.url or da is None or db is None or da == db:
                continue
            if not figures[a.text] & figures[b.text]:  # figures of one kind: rates, sums, counts of a thing
                continue
            shared = {s for s in word_stems(a.text) & word_stems(b.text) if s not in GENERIC and len(s) > 2}
            if len(shared) < 2:
                continue
            newer, older = (a, b) if da > db else (b, a)
            quotes[i] = newer.model_copy(update={"label": f"Newer: {timeframe.show_date(newer.date)}"})
            quotes[j] = older.model_copy(update={"label": f"Earlier: {timeframe.show_date(older.date)}"})
    return quotes

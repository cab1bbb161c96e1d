"""The turns of a conversation: `Turn` (an earlier question and the posts its answer quoted), earlier turns
given as JSON (`turns_from_json`, the CLI's `ask --context`), and `Turns`, the turns of each chat
conversation kept in SQLite (`conversation_turns`, this module's table; schema.py migration 010 creates
it), keyed by a scope such as "thread:<id>" or "dm:<user id>", so a restart keeps them and no scope sees
another's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pbrbot.errors import PbrbotError
from pbrbot.models import Answer

MAX_TURNS = 5  # earlier turns a follow-up is read with, and kept for each scope


@dataclass
class Turn:
    """One earlier question and the posts its answer quoted."""

    question: str
    taken_as: str | None = None
    quotes: list[dict] = field(default_factory=list)  # [{"url": ..., "title": ...}]

    @property
    def understood(self) -> str:
        return self.taken_as or self.question

    @classmethod
    def from_answer(cls, answer: Answer) -> Turn:
        quotes = [{"url": q.url, "title": q.title} for q in answer.quotes]
        return cls(answer.question, answer.taken_as, quotes)

    def as_dict(self) -> dict:
        return {"question": self.question, "taken_as": self.taken_as, "quotes": self.quotes}


def turns_from_json(data) -> list[Turn]:
    """Earlier turns from JSON: [{"question": "...", "quotes": [{"url": ...} or "url", ...]}, ...]
    (quotes and taken_as optional). PbrbotError (one line) when it is not that."""
    if not isinstance(data, list):
        raise PbrbotError("the context must be a JSON list of earlier turns: "
                          '[{"question": "...", "quotes": [...]}, ...]')
    turns = []
    for n, item in enumerate(data, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) \
                or not item["question"].strip():
            raise PbrbotError(f"context turn {n} needs a \"question\" (text)")
        quotes = item.get("quotes") or []
        if not isinstance(quotes, list):
            raise PbrbotError(f"context turn {n}: \"quotes\" must be a list")
        kept = []
        for q in quotes:
            if isinstance(q, str):
                kept.append({"url": q, "title": ""})
            elif isinstance(q, dict) and isinstance(q.get("url"), str):
                kept.append({"url": q["url"], "title": str(q.get("title") or "")})
            else:
                raise PbrbotError(f"context turn {n}: each quote must be a URL or an object with a \"url\"")
        taken = item.get("taken_as")
        taken = taken.strip() if isinstance(taken, str) and taken.strip() else None
        turns.append(Turn(item["question"].strip(), taken, kept))
    return turns


class Turns:
    """The turns of each conversation scope ("thread:<id>", "dm:<user id>") in the store's database; this
    module owns the table (schema.py migration 010)."""

    def __init__(self, store):
        self.store = store

    def add(self, scope: str, turn: Turn) -> None:
        from pbrbot.store import utcnow

        with self.store.transaction():
            self.store.db.execute(
                "insert into conversation_turns (scope, created, question, taken_as, quotes) "
                "values (?, ?, ?, ?, ?)",
                [scope, utcnow(), turn.question, turn.taken_as, json.dumps(turn.quotes)])
            self.store.db.execute(  # keep the last few only
                "delete from conversation_turns where scope = ? and id not in "
                "(select id from conversation_turns where scope = ? order by id desc limit ?)",
                [scope, scope, MAX_TURNS])

    def recent(self, scope: str, n: int = MAX_TURNS) -> list[Turn]:
        rows = self.store.db.execute("select question, taken_as, quotes from conversation_turns "
                                     "where scope = ? order by id desc limit ?", [scope, n]).fetchall()
        return [Turn(q, t, json.loads(qs or "[]")) for q, t, qs in reversed(rows)]

    def has(self, scope: str) -> bool:
        return self.store.db.execute("select 1 from conversation_turns where scope = ? limit 1",
                                     [scope]).fetchone() is not None

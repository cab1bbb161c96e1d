"""👍/👎 feedback on answers: stored in the `feedback` table with the question, the quotes shown (each with
its passage ids), the quote voted on, and for a 👎 the reason and an optional comment."""

from __future__ import annotations

import json

from pbrbot.store import Store, utcnow

# What a 👎 can say was wrong (key stored, label shown).
REASONS = {"wrong_post": "Wrong post", "wrong_sentence": "Right post, wrong sentence",
           "out_of_date": "Out of date", "not_an_answer": "Not an answer", "other": "Other"}


def record_feedback(store: Store, *, user_id: int, guild_id: int | None, question: str, vote: int,
                    passage_ids: list[int], quotes: list[dict], quote: int | None = None,
                    reason: str | None = None, comment: str | None = None) -> int:
    """Store one vote (+1 or -1) on the quote numbered `quote` (0-based) of those shown, or on all of them
    (None); `passage_ids` are the voted quote's (or all). Returns its id."""
    if reason is not None and reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    with store.transaction():
        return int(store.db.table("feedback").insert({
            "created": utcnow(), "user_id": user_id, "guild_id": guild_id, "question": question,
            "vote": 1 if vote > 0 else -1, "passage_ids": json.dumps(passage_ids),
            "quotes": json.dumps(quotes, ensure_ascii=False), "quote": quote, "reason": reason,
            "comment": (comment or "").strip() or None,
        }).last_pk or 0)


def list_feedback(store: Store) -> list[dict]:
    """Every vote, newest first, with passage_ids and quotes decoded."""
    rows = store.db.execute_returning_dicts("select * from feedback order by id desc")
    return [{**r, "passage_ids": json.loads(r["passage_ids"] or "[]"),
             "quotes": json.loads(r["quotes"] or "[]")} for r in rows]


def votes(store: Store) -> list[dict]:
    """Every vote, oldest first: {user_id, question, vote, passage_ids, created}."""
    rows = store.db.execute_returning_dicts("select user_id, question, vote, passage_ids, created "
                                            "from feedback order by id")
    return [{**r, "passage_ids": json.loads(r["passage_ids"] or "[]")} for r in rows]


def downvotes(store: Store, since: str | None = None) -> list[dict]:
    """The 👎 votes, oldest first (given on or after the date `since`)."""
    return store.db.execute_returning_dicts("select * from feedback where vote < 0 and created >= ? "
                                            "order by id", [since or ""])

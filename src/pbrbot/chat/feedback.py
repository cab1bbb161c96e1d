"""👍/👎 feedback on answers: stored in the `feedback` table with the question and the quoted passages."""

from __future__ import annotations

import json

from pbrbot.store import Store, utcnow


def record_feedback(store: Store, *, user_id: int, guild_id: int | None, question: str, vote: int,
                    passage_ids: list[int], quotes: list[dict]) -> int:
    """Store one vote (+1 or -1); returns its id."""
    with store.transaction():
        return int(store.db.table("feedback").insert({
            "created": utcnow(), "user_id": user_id, "guild_id": guild_id, "question": question,
            "vote": 1 if vote > 0 else -1, "passage_ids": json.dumps(passage_ids),
            "quotes": json.dumps(quotes, ensure_ascii=False),
        }).last_pk or 0)


def list_feedback(store: Store) -> list[dict]:
    """Every vote, newest first, with passage_ids and quotes decoded."""
    rows = store.db.execute_returning_dicts("select * from feedback order by id desc")
    return [{**r, "passage_ids": json.loads(r["passage_ids"] or "[]"),
             "quotes": json.loads(r["quotes"] or "[]")} for r in rows]

"""The questions people asked (`asked`: Discord and the CLI) and the knowledge gaps they show: questions the
archive refused and answers voted 👎, grouped so the rephrasings of one question count once, most frequent
first, each with the posts nearest to it. A moderator marks a gap resolved (`gap_resolutions`, undone by
reopening it); a gap whose question has a pinned answer (curation.py) is resolved too.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np

from pbrbot.curation import hidden_post_ids, pins
from pbrbot.feedback import downvotes
from pbrbot.models import Answer
from pbrbot.questions import normalise
from pbrbot.similar import SAME_QUESTION, group, question_vectors
from pbrbot.store import Store, utcnow

REFUSED, DOWNVOTED = "refused", "downvoted"
EXAMPLES = 5  # wordings shown per gap
NEAR = 3  # posts shown per gap


def record(store: Store, *, source: str, answer: Answer, user_id: int | None = None,
           guild_id: int | None = None, explain: dict | None = None) -> int:
    """Log one question answered for a person (source "discord" or "cli"), with what was shown."""
    quotes = [{"url": q.url, "title": q.title, "passage_ids": q.passage_ids} for q in answer.quotes]
    with store.transaction():
        return int(store.db.table("asked").insert({
            "created": utcnow(), "source": source, "user_id": user_id, "guild_id": guild_id,
            "question": answer.question, "found": int(answer.found), "quotes": json.dumps(quotes),
            "explain": json.dumps(explain) if explain is not None else None}).last_pk or 0)


def asked(store: Store, since: str | None = None) -> list[dict]:
    """The logged questions, oldest first (on or after the date `since`, YYYY-MM-DD)."""
    return store.db.execute_returning_dicts("select * from asked where created >= ? order by id",
                                            [since or ""])


def resolve(store: Store, question: str, by: str) -> int:
    """Mark the gap of `question` (and its rephrasings) resolved; returns the resolution's id."""
    with store.transaction():
        return int(store.db.table("gap_resolutions").insert({
            "question": normalise(question), "created": utcnow(), "created_by": by}).last_pk or 0)


def reopen(store: Store, question: str, by: str, embedder, glossary) -> int:
    """Undo the resolutions that cover `question`; returns how many."""
    rows = _resolutions(store)
    if not rows:
        return 0
    vectors = question_vectors(store, embedder, glossary, [question] + [r["question"] for r in rows])
    ids = [r["id"] for r, sim in zip(rows, vectors[1:] @ vectors[0]) if sim >= SAME_QUESTION]
    with store.transaction():
        for rid in ids:
            store.db.execute("update gap_resolutions set undone = ?, undone_by = ? where id = ?",
                             [utcnow(), by, rid])
    return len(ids)


def _resolutions(store: Store) -> list[dict]:
    return store.db.execute_returning_dicts("select * from gap_resolutions where undone is null order by id")


def gaps(store: Store, embedder, glossary, searcher, since: str | None = None,
         include_resolved: bool = False) -> list[dict]:
    """The knowledge gaps: [{"question", "count", "kind", "examples", "near": [{"url", "title"}],
    "resolved"}], most frequent first. `since`: only questions asked (votes given) on or after that date."""
    items = [(REFUSED, r["question"]) for r in asked(store, since) if not r["found"]]
    items += [(DOWNVOTED, r["question"]) for r in downvotes(store, since) if r["question"]]
    if not items:
        return []
    settled = [r["question"] for r in _resolutions(store)] + [p["question"] for p in pins(store)]
    vectors = question_vectors(store, embedder, glossary, [q for _, q in items] + settled)
    asked_vectors, settled_vectors = vectors[:len(items)], vectors[len(items):]
    hidden = hidden_post_ids(store)
    out: list[dict[str, Any]] = []
    for kind in (REFUSED, DOWNVOTED):
        rows = [i for i, (k, _) in enumerate(items) if k == kind]
        for members in group(asked_vectors[rows]):
            idx = [rows[m] for m in members]
            wordings = Counter(normalise(items[i][1]) for i in idx)
            question = wordings.most_common(1)[0][0]
            resolved = bool(len(settled_vectors)) and \
                float(np.max(settled_vectors @ asked_vectors[idx].T)) >= SAME_QUESTION
            if resolved and not include_resolved:
                continue
            out.append({"question": question, "count": len(idx), "kind": kind,
                        "examples": [w for w, _ in wordings.most_common(EXAMPLES)],
                        "near": _near(searcher, question, hidden), "resolved": resolved, "last": max(idx)})
    out.sort(key=lambda g: (-g["count"], -g["last"]))  # ties: the most recently asked first
    return [{k: v for k, v in g.items() if k != "last"} for g in out]


def _near(searcher, question: str, hidden: set[int]) -> list[dict]:
    near: list[dict] = []
    for hit in searcher.search(question, k=NEAR + len(hidden) + 2, per_post=1):
        if hit.post_id not in hidden and all(n["url"] != hit.url for n in near):
            near.append({"url": hit.url, "title": hit.title})
        if len(near) == NEAR:
            break
    return near

"""Keyword search: user text -> a safe FTS5 query -> passages ranked by BM25.

User text never reaches MATCH as written: it is cut into word tokens, each token is double-quoted
(so AND/OR/NOT/NEAR, *, -, :, ^, brackets and quotes are just words or nothing), and the tokens are
OR-combined for recall; BM25 ranks passages sharing more (and rarer) words first. Stopwords are
dropped unless nothing else is left. Acronym expansions are added as quoted phrases.
"""

from __future__ import annotations

import re
import sqlite3

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours out over own same she should so some
such than that the their theirs them then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours
""".split())


def query_terms(text: str) -> list[str]:
    """The words of `text` worth matching (stopwords dropped unless they are all there is), deduplicated."""
    tokens = [t.lower().replace("’", "'") for t in _TOKEN.findall(text or "")]
    words = [t for t in tokens if t not in STOPWORDS] or tokens
    return list(dict.fromkeys(words))


def _quote(phrase: str) -> str:
    return '"' + phrase.replace('"', '""') + '"'


def build_match(text: str, phrases: list[str] | tuple[str, ...] = ()) -> str | None:
    """An FTS5 MATCH expression for `text` (plus extra phrases), or None when there is nothing to look for."""
    parts = [_quote(t) for t in query_terms(text)]
    for phrase in phrases:
        words = query_terms(phrase)
        if words:
            parts.append(_quote(" ".join(_TOKEN.findall(phrase.lower()))))
    parts = list(dict.fromkeys(parts))
    return " OR ".join(parts) if parts else None


def keyword_search(db: sqlite3.Connection, text: str, k: int,
                   phrases: list[str] | tuple[str, ...] = ()) -> list[tuple[int, float]]:
    """(passage id, BM25 score: higher is better) for the k best keyword matches, best first."""
    match = build_match(text, phrases)
    if match is None or k <= 0:
        return []
    rows = db.execute(
        "select rowid, bm25(passages_fts) as rank from passages_fts where passages_fts match ? "
        "order by rank limit ?", [match, k],
    ).fetchall()
    return [(int(rowid), -float(rank)) for rowid, rank in rows]

"""Keyword search: user text -> a safe, bounded FTS5 query -> passages ranked by BM25.

User text never reaches MATCH as written: it is cut into word tokens, each token is double-quoted
(so AND/OR/NOT/NEAR, *, -, :, ^, brackets and quotes are just words or nothing), and the tokens are
OR-combined for recall; BM25 ranks passages sharing more (and rarer) words first. Stopwords are
dropped unless nothing else is left. Acronym expansions are added as quoted phrases.

The cost of an FTS5 query is the length of the doclists it reads: a common word at 10^6 passages
matches hundreds of thousands of them, all scored by BM25 before the best k come out. So the query is
planned with each word's document count (table keyword_terms, FTS5's own stems, refreshed after
index runs): words are OR-ed rarest first while their summed document counts stay within
POSTINGS_BUDGET; when even the rarest word is over it, pairs of the rarest three are AND-ed instead
(FTS5 intersects doclists cheaply) as long as they cannot match more than MAX_POSTINGS passages, and
otherwise the keyword half is left out: the dense half answers alone. What gets dropped are the words
BM25 weighs least (the most common), so small archives (the sample, a few thousand passages) are
searched exactly as before.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbrbot.passages import count as count_passages

if TYPE_CHECKING:
    from pbrbot.store import Store

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours out over own same she should so some
such than that the their theirs them then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours
""".split())  # noqa: SIM905 - a word list reads best as text
# FTS5 returns and scores every passage a query matches (~1-2 us each here, whatever LIMIT says): the
# summed document counts of the words one query may OR together, and the most passages AND-ed pairs
# (or a lone common word) may match before the keyword half is left out.
POSTINGS_BUDGET = 8_000
MAX_POSTINGS = 8_000
AND_WORDS = 3
REFRESH_CHANGE = 0.02  # term counts are recounted when the passage count moved this much since
TOKENIZE = "porter unicode61"  # the passages_fts tokenizer (store.py)


def query_terms(text: str) -> list[str]:
    """The words of `text` worth matching (stopwords dropped unless they are all there is), deduplicated."""
    tokens = [t.lower().replace("’", "'") for t in _TOKEN.findall(text or "")]
    words = [t for t in tokens if t not in STOPWORDS] or tokens
    return list(dict.fromkeys(words))


def _quote(phrase: str) -> str:
    return '"' + phrase.replace('"', '""') + '"'


def match_units(text: str, phrases: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The quoted words of `text` and the quoted extra phrases, each a unit of an FTS5 query."""
    parts = [_quote(t) for t in query_terms(text)]
    for phrase in phrases:
        if query_terms(phrase):
            parts.append(_quote(" ".join(_TOKEN.findall(phrase.lower()))))
    return list(dict.fromkeys(parts))


@dataclass
class Plan:
    match: str | None  # the MATCH expression, None: leave it to the dense half
    postings: int  # estimated doclist entries read
    dropped: list[str]  # units left out


class KeywordIndex:
    """The passages' FTS5 index, with its term counts. Thread-safe: each thread queries through its own
    connection (Store.db), and the stems cache is only ever added to or emptied whole."""

    def __init__(self, store: Store):
        self.store = store
        self._stems: dict[str, tuple[str, ...]] = {}

    @property
    def conn(self) -> sqlite3.Connection:
        """The calling thread's connection."""
        return self.store.db.conn

    # -- FTS5's own stems and their document counts ---------------------------------------------
    def stems(self, units: list[str]) -> dict[str, tuple[str, ...]]:
        """Each unit's terms as FTS5 indexes them (porter stems), by FTS5's own tokenizer."""
        stems = dict(self._stems)  # (another thread may empty the cache meanwhile)
        todo = [u for u in dict.fromkeys(units) if u not in stems]
        if todo:
            conn = self.conn  # its temp tables are this connection's, so this thread's alone
            conn.execute(f"create virtual table if not exists temp.pbrbot_tokens using "
                         f"fts5(unit, tokenize='{TOKENIZE}')")
            conn.execute("create virtual table if not exists temp.pbrbot_token_terms using "
                         "fts5vocab(temp, pbrbot_tokens, 'instance')")
            conn.execute("delete from temp.pbrbot_tokens")
            conn.executemany("insert into temp.pbrbot_tokens (rowid, unit) values (?, ?)",
                             list(enumerate(todo)))
            found: dict[int, list[tuple[int, str]]] = {}
            for doc, offset, term in conn.execute("select doc, offset, term from temp.pbrbot_token_terms"):
                found.setdefault(doc, []).append((offset, term))
            conn.execute("delete from temp.pbrbot_tokens")
            if len(self._stems) > 50_000:
                self._stems.clear()
            for i, unit in enumerate(todo):
                stems[unit] = self._stems[unit] = tuple(t for _, t in sorted(found.get(i, [])))
        return {u: stems[u] for u in units}

    def doc_counts(self, terms: list[str]) -> dict[str, int] | None:
        """Passages containing each term (0: none, or new since the counts were made); None when there
        are no counts yet."""
        if not terms:
            return {}
        if self.counted_passages() is None:
            return None
        rows = dict(self.conn.execute(
            f"select term, docs from keyword_terms where term in ({','.join('?' * len(terms))})", terms))
        return {t: rows.get(t, 0) for t in terms}

    def prefix_counts(self, prefixes: list[str]) -> dict[str, int] | None:
        """Passages containing a term that starts with each prefix, as FTS5 reads `"prefix"*` (the prefix
        stemmed first). The sum over those terms: an upper bound, exact when one term dominates (on the seed
        questions it weighs words as the exact count did; the largest single count did worse). None when
        there are no counts yet."""
        if self.counted_passages() is None:
            return None
        out = {}
        for prefix, terms in self.stems(prefixes).items():
            stemmed = "".join(terms[:1])
            if not stemmed:
                out[prefix] = 0
                continue
            end = stemmed[:-1] + chr(ord(stemmed[-1]) + 1)
            row = self.conn.execute("select sum(docs) from keyword_terms where term >= ? and term < ?",
                                    [stemmed, end]).fetchone()
            out[prefix] = int(row[0] or 0)
        return out

    def counted_passages(self) -> int | None:
        """Passages in the index when the term counts were last made, or None if never."""
        value = self.store.get_meta("keyword_terms.passages")
        return int(value) if value is not None else None

    def refresh(self, force: bool = False) -> bool:
        """Recount every term's passages (a scan of the FTS5 index: ~seconds at 10^6) when the passage
        count has moved by REFRESH_CHANGE since the last count. Returns whether it recounted."""
        passages = count_passages(self.store)
        last = self.counted_passages()
        if not force and last is not None and abs(passages - last) <= REFRESH_CHANGE * max(last, 1):
            return False
        with self.store.transaction():
            self.conn.execute("delete from keyword_terms")
            self.conn.execute("insert into keyword_terms (term, docs) "
                              "select term, doc from passages_fts_terms")
            self.store.set_meta("keyword_terms.passages", str(passages))
        return True

    # -- planning and searching -------------------------------------------------------------------
    def plan(self, text: str, phrases: list[str] | tuple[str, ...] = ()) -> Plan:
        units = match_units(text, phrases)
        if not units:
            return Plan(None, 0, [])
        stems = self.stems(units)
        units = [u for u in units if stems[u]]  # a unit with no indexable term matches nothing
        if not units:
            return Plan(None, 0, [])
        counts = self.doc_counts(sorted({t for u in units for t in stems[u]}))
        if counts is None:  # no term counts: the plain OR query
            return Plan(" OR ".join(units), -1, [])
        # A unit matches at most its rarest term's passages and costs the doclists of all its terms. A unit
        # the counts do not know (0) is new since they were made: cheap, and always kept.
        size = {u: min(counts[t] for t in stems[u]) for u in units}
        cost = {u: sum(counts[t] for t in stems[u]) for u in units}
        new = [u for u in units if size[u] == 0]
        ranked = sorted((u for u in units if size[u] > 0), key=lambda u: (size[u], cost[u]))
        chosen, used, total = [], set(), 0
        for u in ranked:
            if total + cost[u] <= POSTINGS_BUDGET:
                chosen.append(u)
                used.add(u)
                total += cost[u]
        if not chosen and ranked:
            # Even the rarest word is over budget: pairs of the rarest few AND-ed, which FTS5 intersects
            # cheaply; a pair matches at most its rarer word's passages, and those bounds must fit
            # MAX_POSTINGS. (A lone word is its own bound.)
            rarest = ranked[:AND_WORDS]
            groups = sorted(((a, b) for i, a in enumerate(rarest) for b in rarest[i + 1:]),
                            key=lambda g: min(size[u] for u in g)) if len(rarest) > 1 else [tuple(rarest)]
            for group in groups:
                bound = min(size[u] for u in group)
                if total + bound <= MAX_POSTINGS:
                    chosen.append(f"({' AND '.join(group)})" if len(group) > 1 else group[0])
                    used.update(group)
                    total += bound
        parts = new + chosen
        return Plan(" OR ".join(parts) if parts else None, total, [u for u in ranked if u not in used])

    def search(self, text: str, k: int, phrases: list[str] | tuple[str, ...] = ()) -> list[tuple[int, float]]:
        """(passage id, BM25 score: higher is better) for the k best keyword matches, best first."""
        if k <= 0:
            return []
        match = self.plan(text, phrases).match
        if match is None:
            return []
        rows = self.conn.execute(
            "select rowid, bm25(passages_fts) as rank from passages_fts where passages_fts match ? "
            "order by rank limit ?", [match, k],
        ).fetchall()
        return [(int(rowid), -float(rank)) for rowid, rank in rows]

    def phrase_spans(self, phrases: list[str], limit: int) -> list[tuple[int, int, int]]:
        """(post id, start, end) of the `limit` passages that best match any of the phrases (BM25)."""
        match = " OR ".join('"' + " ".join(re.findall(r"\w+", p)) + '"'
                            for p in phrases if re.search(r"\w", p))
        if not match:
            return []
        rows = self.conn.execute(
            'select p.post_id, p.start, p."end" from passages_fts f join passages p on p.id = f.rowid '
            "where passages_fts match ? order by bm25(passages_fts) limit ?", [match, limit]).fetchall()
        return [(int(a), int(b), int(c)) for a, b, c in rows]

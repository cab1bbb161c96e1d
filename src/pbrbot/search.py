"""Question -> dense and keyword rankings -> fused, diverse hits.

Fusion is weighted reciprocal rank fusion: score = sum over the two rankings of w / (RRF_K + rank).
Known acronyms in the question (PbR, SIB, CRC, NOMS, TR, JDL, MoJ ...) are expanded, as phrases for the
keyword half and in brackets for the dense half, so "SIB" finds posts that only say "Social Impact Bonds"
and vice versa. Safe for concurrent searches from several threads.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from pbrbot.embedding import embedder_name
from pbrbot.keywords import keyword_search as fts_search
from pbrbot.models import Hit
from pbrbot.vectors import VectorIndex, manifest_stamp

log = logging.getLogger(__name__)

RRF_K = 60
DENSE_WEIGHT = 1.0
KEYWORD_WEIGHT = 1.0
CANDIDATES = 50  # taken from each half before fusion

# Fallback until a glossary offers expansions; the glossary's terms are added to these.
ACRONYMS = {
    "PbR": "payment by results",
    "SIB": "social impact bond",
    "SIBs": "social impact bonds",
    "CRC": "community rehabilitation company",
    "CRCs": "community rehabilitation companies",
    "NOMS": "National Offender Management Service",
    "TR": "Transforming Rehabilitation",
    "JDL": "Justice Data Lab",
    "MoJ": "Ministry of Justice",
    "DWP": "Department for Work and Pensions",
    "NPS": "National Probation Service",
    "HMPPS": "Her Majesty's Prison and Probation Service",
    "JR": "justice reinvestment",
    "SMF": "Social Market Foundation",
}
_WORD = re.compile(r"[^\W_]+")


class Searcher:
    def __init__(self, services):
        self.services = services
        self._lock = threading.Lock()
        self._vectors: VectorIndex | None = None
        self._stamp: tuple | None = None
        self._acronyms: dict[str, str] | None = None

    # -- the vector index, reloaded when another process saves a new one ----------------------
    @property
    def data_dir(self) -> Path:
        return Path(self.services.settings.data_dir)

    def vectors(self) -> VectorIndex | None:
        stamp = manifest_stamp(self.data_dir)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._vectors = self._load()
                    self._stamp = stamp
        return self._vectors

    def _load(self) -> VectorIndex | None:
        name = embedder_name(self.services.settings)
        try:
            return VectorIndex.load(self.data_dir, name)
        except FileNotFoundError:  # the file named by a manifest just replaced: read the new one
            return VectorIndex.load(self.data_dir, name)

    def use_vectors(self, vectors: VectorIndex) -> None:
        """Called by run_index in this process: search the index it just built."""
        with self._lock:
            self._vectors, self._stamp = vectors, manifest_stamp(self.data_dir)

    # -- query expansion ----------------------------------------------------------------------
    def acronyms(self) -> dict[str, str]:
        if self._acronyms is None:
            table = dict(ACRONYMS)
            try:
                glossary = getattr(self.services, "glossary", None)
                for term in glossary.terms() if glossary is not None else ():
                    expansion = getattr(term, "expansion", None)
                    for name in [term.name, *getattr(term, "aliases", ())]:
                        if expansion and name and name.replace(" ", "").isalnum() and len(name) <= 6:
                            table.setdefault(name, expansion)
            except Exception as exc:  # no glossary yet, or a broken one: the built-in map still works
                log.debug("glossary unavailable for acronyms: %s", exc)
            self._acronyms = table
        return self._acronyms

    def expansions(self, query: str) -> list[str]:
        """Phrases to add to the query: expansions of its acronyms, acronyms of its spelled-out terms."""
        table = self.acronyms()
        lowered = {k.lower(): k for k in table if len(k) >= 3}
        out: list[str] = []
        for word in _WORD.findall(query):
            key = word if word in table else lowered.get(word.lower())
            if key:
                out.append(table[key])
        low = " ".join(_WORD.findall(query.lower()))
        for acronym, expansion in table.items():
            if " ".join(_WORD.findall(expansion.lower())) in low:
                out.append(acronym)
        return list(dict.fromkeys(out))

    # -- the two halves -----------------------------------------------------------------------
    def _dense_ids(self, query: str, k: int, extra: list[str]) -> list[tuple[int, float]]:
        vectors = self.vectors()
        if vectors is None or not query.strip():
            return []
        text = f"{query} ({'; '.join(extra)})" if extra else query
        embedder = self.services.embedder
        if embedder.dim != vectors.dim:
            from pbrbot.vectors import IndexMismatch

            raise IndexMismatch(f"the index was built with model {vectors.model} (dim {vectors.dim}) but the "
                                f"model gives dim {embedder.dim}; run `pbrbot index --rebuild`")
        return vectors.search(embedder.encode_query(text), k)

    def _keyword_ids(self, query: str, k: int, extra: list[str]) -> list[tuple[int, float]]:
        return fts_search(self.services.store.db.conn, query, k, extra)

    def dense_search(self, query: str, k: int = 10) -> list[Hit]:
        ranked = self._dense_ids(query, k, self.expansions(query))
        return self._hits([(i, s, r, None, s) for r, (i, s) in enumerate(ranked, 1)])

    def keyword_search(self, query: str, k: int = 10) -> list[Hit]:
        ranked = self._keyword_ids(query, k, self.expansions(query))
        return self._hits([(i, s, None, r, None) for r, (i, s) in enumerate(ranked, 1)])

    # -- hybrid -------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, per_post: int = 2, timings: dict | None = None) -> list[Hit]:
        """The k best passages for `query`, at most `per_post` from any one post.

        `timings`, when given, is filled with milliseconds spent in: embed+dense, keyword, fusion.
        """
        if not query or not query.strip() or k <= 0:
            return []
        t0 = time.perf_counter()
        extra = self.expansions(query)
        n = max(CANDIDATES, 3 * k)
        dense = self._dense_ids(query, n, extra)
        t1 = time.perf_counter()
        keyword = self._keyword_ids(query, n, extra)
        t2 = time.perf_counter()
        fused: dict[int, list] = {}
        for rank, (pid, score) in enumerate(dense, 1):
            fused[pid] = [DENSE_WEIGHT / (RRF_K + rank), rank, None, score]
        for rank, (pid, _) in enumerate(keyword, 1):
            entry = fused.setdefault(pid, [0.0, None, None, None])
            entry[0] += KEYWORD_WEIGHT / (RRF_K + rank)
            entry[2] = rank
        order = sorted(fused.items(), key=lambda kv: (-kv[1][0], kv[0]))
        hits = self._hits([(pid, e[0], e[1], e[2], e[3]) for pid, e in order])
        out: list[Hit] = []
        per: dict[int, int] = {}
        for hit in hits:
            if per.get(hit.post_id, 0) >= per_post:
                continue
            per[hit.post_id] = per.get(hit.post_id, 0) + 1
            out.append(hit)
            if len(out) == k:
                break
        if timings is not None:
            timings.update(dense_ms=(t1 - t0) * 1000, keyword_ms=(t2 - t1) * 1000,
                           fusion_ms=(time.perf_counter() - t2) * 1000)
        return out

    def _hits(self, ranked: list[tuple]) -> list[Hit]:
        """Passage rows joined to the ranking; ids with no passage row (deleted since) are dropped."""
        if not ranked:
            return []
        ids = [r[0] for r in ranked]
        marks = ",".join("?" * len(ids))
        rows = {r[0]: r for r in self.services.store.db.conn.execute(
            f'select p.id, p.post_id, p.start, p."end", p.text, posts.url, posts.title, posts.date '
            f"from passages p join posts on posts.id = p.post_id where p.id in ({marks})", ids)}
        hits = []
        for pid, score, dense_rank, keyword_rank, dense_score in ranked:
            row = rows.get(pid)
            if row is None:
                continue
            _, post_id, start, end, text, url, title, date = row
            hits.append(Hit(passage_id=pid, post_id=post_id, url=url, title=title, date=date, text=text,
                            start=start, end=end, score=score, dense_rank=dense_rank,
                            keyword_rank=keyword_rank, dense_score=dense_score))
        return hits

"""Question -> dense and keyword rankings -> fused, diverse hits.

Fusion is weighted reciprocal rank fusion: score = sum over the two rankings of w / (RRF_K + rank), the
dense half weighing 1 and the keyword half `keyword` (data/fusion.json, fitted with cross-validation by
`pbrbot fit` on the labelled questions: see fit.py), times `common` when the question's rarest word is
common in the archive (its IDF below `rare` of the largest possible): such a question leans on the dense
half.
Glossary terms in the question (PbR, SIB, CRC, NOMS, TR, JDL, MoJ ...) are expanded: every form of the
term is added as a phrase to the keyword half and the dense half embeds the spelled-out question, so
"SIB" finds posts that only say "Social Impact Bonds" and vice versa.
The keyword half runs on a worker thread while the calling thread embeds the question and searches the
vectors (SQLite, onnxruntime and FAISS release the GIL): an answer waits for the slower half, not both.
Safe for concurrent searches from several threads.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np

from pbrbot import passages
from pbrbot.embedding import Embedder
from pbrbot.glossary import Glossary
from pbrbot.keywords import KeywordIndex, query_terms
from pbrbot.models import Hit
from pbrbot.store import Store
from pbrbot.vectors import VectorIndex, manifest_stamp

log = logging.getLogger(__name__)

RRF_K = 60
FUSION_FILE = "fusion.json"
DEFAULT_FUSION = {"keyword": 1.0, "common": 1.0, "rare": 0.0}
CANDIDATES = 50  # taken from each half before fusion
FILTERED_CANDIDATES = 400  # ... when only some posts may be returned
QUERY_CACHE = 256  # query embeddings kept

_WORD = re.compile(r"[^\W_]+")


class Searcher:
    """Hybrid search over the store's passages and the vector index saved in `data_dir` under the name
    `index_name` (embedding.embedder_name). `glossary`: None searches without acronym expansion."""

    def __init__(self, store: Store, embedder: Embedder, data_dir: Path, index_name: str,
                 glossary: Glossary | None = None):
        self.store, self.embedder, self.glossary = store, embedder, glossary
        self.data_dir, self.index_name = Path(data_dir), index_name
        self._lock = threading.Lock()  # the caches below
        self._vectors: VectorIndex | None = None
        self._stamp: tuple | None = None
        self.keywords = KeywordIndex(store)
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._keyword_pool: ThreadPoolExecutor | None = None
        self.fusion = load_fusion()

    # -- the vector index, reloaded when another process saves a new one ----------------------
    def vectors(self) -> VectorIndex | None:
        stamp = manifest_stamp(self.data_dir)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._vectors = self._load()
                    self._stamp = stamp
        return self._vectors

    def _load(self) -> VectorIndex | None:
        return VectorIndex.load(self.data_dir, self.index_name)

    def use_vectors(self, vectors: VectorIndex) -> None:
        """Called by run_index in this process: search the index it just built."""
        with self._lock:
            self._vectors, self._stamp = vectors, manifest_stamp(self.data_dir)

    # -- query expansion (from the glossary) -------------------------------------------------
    def expand(self, query: str) -> tuple[list[str], str]:
        """Keyword phrases to add (every form of each glossary term the query names: "SIB" adds
        "social impact bonds" and vice versa) and the query text to embed (terms spelled out)."""
        glossary = self.glossary
        if glossary is None or not query.strip():
            return [], query
        have = " ".join(_WORD.findall(query.lower()))
        phrases = [form for term in glossary.mentioned(query) for form in term.forms
                   if " ".join(_WORD.findall(form.lower())) not in have]
        return list(dict.fromkeys(phrases)), glossary.expand(query)

    # -- the two halves -----------------------------------------------------------------------
    def query_vector(self, text: str) -> np.ndarray:
        """The embedding of a query text; an answer embeds the same (expanded) question for its search and
        for scoring its sentences, so the last QUERY_CACHE are kept."""
        embedder = self.embedder
        key = (embedder.name, text)
        with self._lock:
            vector = self._queries.get(key)
            if vector is not None:
                self._queries.move_to_end(key)
                return vector
        vector = embedder.encode_query(text)
        vector.setflags(write=False)
        with self._lock:
            self._queries[key] = vector
            if len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return vector

    def forget_queries(self) -> None:
        with self._lock:
            self._queries.clear()

    def _dense_ids(self, text: str, k: int) -> list[tuple[int, float]]:
        vectors = self.vectors()
        if vectors is None or not text.strip():
            return []
        embedder = self.embedder
        if embedder.dim != vectors.dim:
            from pbrbot.vectors import IndexMismatch

            raise IndexMismatch(f"the index was built with model {vectors.model} (dim {vectors.dim}) but the "
                                f"model gives dim {embedder.dim}; run `pbrbot index --rebuild`")
        return vectors.search(self.query_vector(text), k)

    def _keyword_ids(self, query: str, k: int, phrases: list[str]) -> list[tuple[int, float]]:
        return self.keywords.search(query, k, phrases)

    def dense_search(self, query: str, k: int = 10) -> list[Hit]:
        ranked = self._dense_ids(self.expand(query)[1], k)
        return self._hits([(i, s, r, None, s) for r, (i, s) in enumerate(ranked, 1)])

    def keyword_search(self, query: str, k: int = 10) -> list[Hit]:
        ranked = self._keyword_ids(query, k, self.expand(query)[0])
        return self._hits([(i, s, None, r, None) for r, (i, s) in enumerate(ranked, 1)])

    # -- hybrid -------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, per_post: int = 2, timings: dict | None = None,
               posts: set[int] | None = None) -> list[Hit]:
        """The k best passages for `query`, at most `per_post` from any one post.

        `timings`, when given, is filled with milliseconds spent in: embed+dense, keyword, fusion.
        `posts`, when given, keeps only passages of these posts (e.g. a period's: timeframe.py); each half
        then ranks FILTERED_CANDIDATES.
        """
        if not query or not query.strip() or k <= 0 or posts is not None and not posts:
            return []
        t0 = time.perf_counter()
        n = max(CANDIDATES, 3 * k) if posts is None else max(FILTERED_CANDIDATES, 3 * k)
        dense, keyword, rarity, keyword_ms, t1 = self.halves(query, n)
        t2 = time.perf_counter()
        order = fuse(dense, keyword, rarity, self.fusion)
        hits = self._hits([(pid, e[0], e[1], e[2], e[3]) for pid, e in order])
        out: list[Hit] = []
        per: dict[int, int] = {}
        for hit in hits:
            if posts is not None and hit.post_id not in posts:
                continue
            if per.get(hit.post_id, 0) >= per_post:
                continue
            per[hit.post_id] = per.get(hit.post_id, 0) + 1
            out.append(hit)
            if len(out) == k:
                break
        if timings is not None:  # the halves overlap: dense_ms + keyword_ms can exceed the time until fusion
            timings.update(dense_ms=(t1 - t0) * 1000, keyword_ms=keyword_ms,
                           fusion_ms=(time.perf_counter() - t2) * 1000, keyword_hits=len(keyword))
        return out

    def halves(self, query: str, n: int = CANDIDATES) -> tuple[list, list, float, float, float]:
        """The dense and keyword rankings [(passage id, score)] of `query` (n of each), how rare its rarest
        word is (`rarity`), the keyword half's milliseconds and when the dense half finished."""
        phrases, dense_text = self.expand(query)
        keyword_half = self._pool().submit(self._timed_keyword_ids, query, n, phrases)
        try:
            dense = self._dense_ids(dense_text, n)
            t1 = time.perf_counter()
        except BaseException as exc:  # nothing left running; the dense half's error is raised, with both
            if (other := keyword_half.exception()) is not None:
                exc.add_note(f"the keyword half failed too: {other!r}")
            raise
        keyword, keyword_ms = keyword_half.result()
        return dense, keyword, self.rarity(query), keyword_ms, t1

    def idf(self, stems: Collection[str]) -> dict[str, float]:
        """IDF weight of each stem (`questions.stem`), from the keyword index's term counts."""
        keywords = self.keywords
        total = max(keywords.counted_passages() or self.store.count_passages(), 1)
        counts = keywords.prefix_counts(sorted(stems)) or {}
        return {s: math.log(1 + total / (1 + counts.get(s, total))) for s in stems}

    def question_idf(self, query: str) -> dict[str, float]:
        """IDF weight of each stem of the query's words."""
        from pbrbot.questions import stem

        return self.idf({stem(t) for t in query_terms(query)})

    def rarity(self, query: str) -> float:
        """IDF of the query's rarest word over the largest possible IDF (0: every word is everywhere)."""
        total = self.keywords.counted_passages()
        if not total:
            return 1.0  # no term counts yet: no word is known to be common
        return max(self.question_idf(query).values(), default=0.0) / math.log(1 + total)

    def _pool(self) -> ThreadPoolExecutor:
        if self._keyword_pool is None:
            with self._lock:
                if self._keyword_pool is None:
                    self._keyword_pool = ThreadPoolExecutor(max_workers=2,
                                                            thread_name_prefix="pbrbot-keywords")
        return self._keyword_pool

    def close(self) -> None:
        """Stop the keyword worker threads (a later search starts them again)."""
        with self._lock:
            pool, self._keyword_pool = self._keyword_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _timed_keyword_ids(self, query: str, k: int, phrases: list[str]) -> tuple[list[tuple[int, float]],
                                                                                   float]:
        t = time.perf_counter()
        return self._keyword_ids(query, k, phrases), (time.perf_counter() - t) * 1000

    def _hits(self, ranked: list[tuple]) -> list[Hit]:
        """Passage rows joined to the ranking; ids with no passage row (deleted since) are dropped."""
        return passages.hits(self.store, ranked)


def load_fusion(path: Path | str | None = None) -> dict:
    """The fitted fusion weighting (data/fusion.json), or equal weights when there is none."""
    try:
        if path is None:
            text = resources.files("pbrbot").joinpath("data", FUSION_FILE).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return dict(DEFAULT_FUSION)
    return {**DEFAULT_FUSION, **{k: float(v) for k, v in json.loads(text).items() if k in DEFAULT_FUSION}}


def fuse(dense: list[tuple[int, float]], keyword: list[tuple[int, float]], rarity: float,
         fusion: dict) -> list[tuple[int, list]]:
    """Weighted RRF of the two rankings: [(passage id, [score, dense rank, keyword rank, dense score])], best
    first."""
    weight = fusion["keyword"] * (fusion["common"] if rarity < fusion["rare"] else 1.0)
    fused: dict[int, list] = {}
    for rank, (pid, score) in enumerate(dense, 1):
        fused[pid] = [1.0 / (RRF_K + rank), rank, None, score]
    for rank, (pid, _) in enumerate(keyword, 1):
        entry = fused.setdefault(pid, [0.0, None, None, None])
        entry[0] += weight / (RRF_K + rank)
        entry[2] = rank
    return sorted(fused.items(), key=lambda kv: (-kv[1][0], kv[0]))

"""What `pbrbot fit` learns from: each labelled question's evidence labels and its cached runs (the search's
two halves and the answerer's prepared candidates, kept in the data dir's fit-cache.pkl, so a refit after
the first takes seconds). The cache is dropped when the archive, the features or the model change.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pbrbot import passages
from pbrbot.evaluate import OUT_OF_SCOPE
from pbrbot.ranker import FEATURES

if TYPE_CHECKING:
    from pbrbot.answer import Answerer

CACHE_FILE = "fit-cache.pkl"


def evidence_pattern(evidence: str) -> re.Pattern:
    words = re.findall(r"[^\W_]+", evidence.replace("’", "'"))
    return re.compile(r"[^\w]+".join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)


def labels(prep, item: dict, gold_weight: float = 0.0) -> np.ndarray:
    """1 for each candidate sentence overlapping the evidence phrase in its post, `gold_weight` for the other
    sentences of a gold post, else 0."""
    y = np.zeros(len(prep.pool))
    if item.get("kind") == OUT_OF_SCOPE or not item.get("evidence"):
        return y
    if gold_weight:
        gold = {u.split("#")[0].rstrip("/").lower() for u in item.get("gold_urls") or []}
        y[:] = [gold_weight * (c.post.url.rstrip("/").lower() in gold) for c in prep.pool]
    pattern = evidence_pattern(item["evidence"])
    spans: dict[int, list[tuple[int, int]]] = {}
    for n, cand in enumerate(prep.pool):
        post = cand.post
        if post.id not in spans:
            spans[post.id] = [m.span() for m in pattern.finditer(post.text.replace("’", "'"))]
        s, e = post.spans[cand.index]
        if any(a < e and b > s for a, b in spans[post.id]):
            y[n] = 1.0
    return y


class Runs:
    """Each question's search halves and its prepared candidates, cached in the data dir."""

    def __init__(self, answerer: Answerer, data_dir: Path, items: list[dict]):
        self.answerer, self.items = answerer, items
        self.path = Path(data_dir) / CACHE_FILE
        self.stamp = self._stamp()
        self.cache: dict = {}
        if self.path.exists():
            try:
                data = pickle.loads(self.path.read_bytes())
                if data.get("stamp") == self.stamp:
                    self.cache = data["entries"]
            except Exception:  # noqa: BLE001 - a broken cache is only rebuilt
                self.cache = {}
        self.dirty = False

    def _stamp(self) -> str:
        n, _, total = passages.fingerprint(self.answerer.store)
        index = self.answerer.searcher.vectors()
        made = index.sentences if index is not None else ""
        return f"{n}:{total}:{','.join(FEATURES)}:{self.answerer.embedder.name}:{made}"

    def halves(self, n: int):
        item = self.items[n]
        key = ("halves", item["question"])
        if key not in self.cache:
            dense, keyword, rarity, _, _ = self.answerer.searcher.halves(item["question"])
            ids = sorted({p for p, _ in dense} | {p for p, _ in keyword})
            post_of = passages.post_ids(self.answerer.store, ids)
            self.cache[key] = (dense, keyword, rarity, post_of)
            self.dirty = True
        return self.cache[key]

    def gold_posts(self, n: int) -> set[int]:
        store = self.answerer.store
        out = set()
        for url in self.items[n].get("gold_urls") or []:
            row = store.get_post_by_url(url) or store.get_post_by_url(url.rstrip("/") + "/")
            if row:
                out.add(row["id"])
        return out

    def prepared(self, n: int, fusion: dict):
        item = self.items[n]
        key = ("prep", item["question"], tuple(sorted(fusion.items())))
        if key not in self.cache:
            answerer = self.answerer
            searcher = answerer.searcher
            saved, searcher.fusion = searcher.fusion, dict(fusion)
            try:
                prep = answerer.prepare(item["question"])
            finally:
                searcher.fusion = saved
            self.cache[key] = (prep, labels(prep, item))
            self.dirty = True
        return self.cache[key]

    def save(self) -> None:
        if self.dirty:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps({"stamp": self.stamp, "entries": self.cache}))
            tmp.replace(self.path)
            self.dirty = False

    def fusion_runs(self, idx: list[int]) -> list:
        """The halves, passage posts and gold posts of the answerable questions `idx` (fit.fit_fusion)."""
        out = []
        for n in idx:
            if self.items[n].get("kind") == OUT_OF_SCOPE:
                continue
            dense, keyword, rarity, post_of = self.halves(n)
            out.append((dense, keyword, rarity, post_of, self.gold_posts(n)))
        return out

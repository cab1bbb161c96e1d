"""Hybrid hits -> the sentences that answer a question -> quoted, linked excerpts, or "not in the archive".

Each candidate sentence (from the top hits' passages, split on the post's own text so every offset is the
post's) is described by the ranker's features (ranker.py: dense cosine of the sentence and of its context
with the question, IDF-weighted overlap, answer-type cues, passage rank, ...) and scored by the fitted
model. When the best score is below the model's calibrated `found`, the answer is "not in the archive"
(with related posts only when something came close); else the sentences are weighed by P(post) x
P(sentence | post) (ranker.Model.rank: a post model and a within-post model, fitted apart) and quotes.py grows
the best of them into short excerpts.
Comparisons ("X vs Y") get a quote for each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pbrbot import passages
from pbrbot.definitions import Definitions
from pbrbot.embedding import Embedder
from pbrbot.errors import PbrbotError
from pbrbot.glossary import Glossary
from pbrbot.models import Answer, Hit, Quote
from pbrbot.questions import _SIDE_STOP, comparison_sides, read_part, stem, word_stems
from pbrbot.quotes import Candidate, Pick, candidates, grow, make_quote, order, related, select
from pbrbot.ranker import Model, distinct_cosines, features, load_model
from pbrbot.search import Searcher
from pbrbot.sentences import ALONE, PostText, SentenceVectors
from pbrbot.store import Store

POOL_HITS = 20  # hybrid hits whose sentences are candidates
POST_CACHE = 2000  # posts kept split into sentences (~20 MB)
QUOTE_FLOOR = 0.005  # a second or third quote weighs at least this share of the best sentence (Model.rank)
SIDE_FLOOR = 0.15  # a comparison side's quote needs at least this cosine with that side
# A period's best sentence may weigh far less than the best of all: the gate has judged the question.
ONLY_FLOOR = 1e-6
PREFER_BOOST = 1.5  # weight of a preferred post's sentences (a follow-up's already-quoted posts)


@dataclass
class Prepared:
    """A question's search and scored candidates: everything an answer needs but the model."""

    question: str
    hits: list[Hit]
    sides: list[str]
    pool: list[Candidate]
    x: np.ndarray  # features of the pool (ranker.FEATURES)
    prefer: frozenset[int] = frozenset()  # posts whose sentences weigh PREFER_BOOST times more
    only: frozenset[int] | None = None  # quote only these posts (a period's), None: any


class Answerer:
    """Questions -> Answers. Knows nothing of Discord or the terminal. Safe for concurrent answers from
    several threads (each reads through its own SQLite connection: Store.db)."""

    def __init__(self, searcher: Searcher, store: Store, embedder: Embedder, glossary: Glossary,
                 model: Model | None = None):
        self.searcher, self.store, self.embedder, self.glossary = searcher, store, embedder, glossary
        self._model = model
        # posts split into sentences, the most recently used POST_CACHE (lru_cache is thread-safe)
        self._post_text = lru_cache(maxsize=POST_CACHE)(self._load_post)
        self.definitions = Definitions(store, glossary, embedder, self)

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = load_model()
        return self._model

    # -- public -------------------------------------------------------------------------------
    def ask(self, question: str, n: int = 3) -> Answer:
        return self.answer(self.prepare(question), n)

    def prepare(self, question: str, posts: set[int] | None = None,
                prefer: set[int] | None = None) -> Prepared:
        """`posts`: answer only from these posts (a period's); `prefer`: posts to lean on (a follow-up's
        already-quoted ones): their passages join the pool and their sentences weigh PREFER_BOOST more."""
        question = read_part(question or "")
        if not question:
            raise PbrbotError("empty question: ask something about the archive")
        searcher = self.searcher
        hits = searcher.search(question, k=POOL_HITS, per_post=4)
        if posts is not None:  # the pool is scored whole (its features are relative to it), quoted in part
            hits += searcher.search(question, k=POOL_HITS // 2, per_post=4, posts=posts)
        preferred = frozenset(prefer or ())
        if posts is not None:
            preferred &= frozenset(posts)
        if preferred:
            hits += searcher.search(question, k=6, per_post=3, posts=set(preferred))
        sides = comparison_sides(question)
        side_hits = [h for side in sides for h in searcher.search(side, k=6, per_post=2, posts=posts)]
        pool = candidates(hits + side_hits, self.post_text)
        x = self.features(pool, self.glossary.expand(question)) if pool else np.zeros((0, 0))
        return Prepared(question, hits, sides, pool, x, preferred,
                        frozenset(posts) if posts is not None else None)

    def answer(self, prep: Prepared, n: int = 3, model: Model | None = None) -> Answer:
        model = model or self.model
        n = max(1, min(int(n), 10))
        best = model.answers(prep.x) if prep.pool else 0.0
        if best < model.found:
            close = related(prep.hits) if prep.pool and best >= model.related else []
            return Answer(question=prep.question, found=False, related=close)
        # quotes: by weight relative to the best sentence
        for cand, w in zip(prep.pool, model.rank(prep.x, [c.post.id for c in prep.pool], prep.hits)):
            cand.score = float(w) * (PREFER_BOOST if cand.post.id in prep.prefer else 1.0)
        pool = prep.pool
        if prep.only is not None:
            pool = [c for c in pool if c.post.id in prep.only]
            if not pool or max(c.score for c in pool) < ONLY_FLOOR:
                return Answer(question=prep.question, found=False,
                              related=related([h for h in prep.hits if h.post_id in prep.only]))
            best = max(c.score for c in pool)
            for cand in pool:  # weights relative to the period's best sentence
                cand.score /= best
        picks = select(pool, n, floor=QUOTE_FLOOR)
        if prep.sides:
            picks = self._cover_sides(picks, pool, prep.sides, prep.question, n, QUOTE_FLOOR)
        return Answer(question=prep.question, found=True, quotes=[self.quote(p) for p in picks])

    def define(self, term: str) -> Answer:
        return self.definitions.define(term)

    def quote(self, pick: Pick) -> Quote:
        """The pick as a quote, with the ids of the passages it came from."""
        quote = make_quote(pick)
        spans = [pick.post.spans[i] for i in pick.indices]
        quote.passage_ids = passages.covering(self.store, pick.post.id, spans)
        return quote

    # -- candidates ---------------------------------------------------------------------------
    def post_text(self, post_id: int) -> PostText:
        return self._post_text(post_id)

    def _load_post(self, post_id: int) -> PostText:
        row = self.store.get_post(post_id)
        if row is None:
            raise PbrbotError(f"post {post_id} is in the index but not in the store: run `pbrbot index`")
        return PostText.from_row(row)

    def forget_posts(self) -> None:
        """Empty the cache of posts split into sentences."""
        self._post_text.cache_clear()

    def vectors(self, cands: list[Candidate]) -> np.ndarray:
        """Sentence embeddings: mostly stored by `pbrbot index` (see sentences.py)."""
        return self.text_vectors([c.text for c in cands], [c.post for c in cands])

    def text_vectors(self, texts: list[str], posts: list[PostText]) -> np.ndarray:
        """Vectors of sentence texts of `posts`, made the way the archive's index run made them (the
        manifest's `sentences`: an archive indexed before late chunking is answered as it was made)."""
        index = self.searcher.vectors()
        method = (index.sentences or ALONE) if index is not None else ALONE
        return SentenceVectors(self.store, self.embedder, method).get(texts, posts)

    def features(self, pool: list[Candidate], query: str) -> np.ndarray:
        searcher = self.searcher
        qvec = searcher.query_vector(query)
        # The sentences and their contexts in one lookup.
        vectors = self.text_vectors([c.text for c in pool] + [c.post.context(c.index) for c in pool],
                                    [c.post for c in pool])
        both = vectors @ qvec
        distinct = distinct_cosines(vectors[:len(pool)], qvec, [c.post.id for c in pool])
        return features(pool, query, both[:len(pool)], both[len(pool):], searcher.question_idf(query),
                        distinct)

    # -- comparisons --------------------------------------------------------------------------
    def _cover_sides(self, picks: list[Pick], pool: list[Candidate], sides: list[str], question: str,
                     n: int, found: float) -> list[Pick]:
        """Make sure each side of a comparison is quoted (when the archive speaks of it at all)."""
        vectors = self.vectors(pool)
        generic = {stem(w) for w in _SIDE_STOP}
        for side in sides:
            side_stems = word_stems(side) - generic
            if not side_stems:
                continue
            if any(side_stems & word_stems(s) for p in picks for s in p.segments()):
                continue
            weights = self.searcher.idf(side_stems)
            key_stem = max(side_stems, key=lambda s: weights[s])
            svec = self.searcher.query_vector(self.glossary.expand(f"{side} {question}"))
            best = None
            for cand, sc in zip(pool, vectors @ svec):
                if key_stem in word_stems(cand.text) and sc >= SIDE_FLOOR and cand.score >= found / 2 \
                        and (best is None or sc > best[1]):
                    best = (cand, float(sc))
            if best is None:
                continue
            pick = grow(best[0], {(c.post.id, c.index): c.score for c in pool})
            pick.score = best[0].score
            if len(picks) >= n:
                # Replace the weakest quote that no other side relies on.
                for victim in sorted(picks, key=lambda p: p.score):
                    if not any(word_stems(s) & (word_stems(o) - generic)
                               for o in sides if o != side for s in victim.segments()):
                        picks.remove(victim)
                        break
                else:
                    picks.pop()
            picks.append(pick)
        return order(picks)

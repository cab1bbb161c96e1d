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

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from pbrbot.errors import PbrbotError
from pbrbot.models import Answer, Hit
from pbrbot.questions import _SIDE_STOP, comparison_sides, normalise, stem, word_stems
from pbrbot.quotes import Candidate, Pick, candidates, grow, make_quote, order, related, select
from pbrbot.ranker import Model, features, load_model
from pbrbot.sentences import PostText, SentenceVectors

POOL_HITS = 20  # hybrid hits whose sentences are candidates
POST_CACHE = 2000  # posts kept split into sentences (~20 MB)
QUOTE_FLOOR = 0.005  # a second or third quote weighs at least this share of the best sentence (Model.rank)
SIDE_FLOOR = 0.15  # a comparison side's quote needs at least this cosine with that side


@dataclass
class Prepared:
    """A question's search and scored candidates: everything an answer needs but the model."""

    question: str
    hits: list[Hit]
    sides: list[str]
    pool: list[Candidate]
    x: np.ndarray  # features of the pool (ranker.FEATURES)


class Answerer:
    """Questions -> Answers. Knows nothing of Discord or the terminal."""

    def __init__(self, services, model: Model | None = None):
        self.services = services
        self._model = model
        self._posts: OrderedDict[int, PostText] = OrderedDict()  # the most recently used POST_CACHE

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = load_model()
        return self._model

    # -- public -------------------------------------------------------------------------------
    def ask(self, question: str, n: int = 3) -> Answer:
        return self.answer(self.prepare(question), n)

    def prepare(self, question: str) -> Prepared:
        question = normalise(question or "")
        if not question:
            raise PbrbotError("empty question: ask something about the archive")
        searcher = self.services.searcher
        hits = searcher.search(question, k=POOL_HITS, per_post=4)
        sides = comparison_sides(question)
        side_hits = [h for side in sides for h in searcher.search(side, k=6, per_post=2)]
        pool = candidates(hits + side_hits, self.post_text)
        x = self.features(pool, self.services.glossary.expand(question)) if pool else np.zeros((0, 0))
        return Prepared(question, hits, sides, pool, x)

    def answer(self, prep: Prepared, n: int = 3, model: Model | None = None) -> Answer:
        model = model or self.model
        n = max(1, min(int(n), 10))
        best = model.answers(prep.x) if prep.pool else 0.0
        if best < model.found:
            close = related(prep.hits) if prep.pool and best >= model.related else []
            return Answer(question=prep.question, found=False, related=close)
        for cand, w in zip(prep.pool, model.rank(prep.x, [c.post.id for c in prep.pool])):  # quotes: by weight relative to the best sentence
            cand.score = float(w)
        picks = select(prep.pool, n, floor=QUOTE_FLOOR)
        if prep.sides:
            picks = self._cover_sides(picks, prep.pool, prep.sides, prep.question, n, QUOTE_FLOOR)
        return Answer(question=prep.question, found=True, quotes=[make_quote(p) for p in picks])

    def define(self, term: str) -> Answer:
        from pbrbot.definitions import define

        return define(self.services, self, term)

    # -- candidates ---------------------------------------------------------------------------
    def post_text(self, post_id: int) -> PostText:
        post = self._posts.get(post_id)
        if post is None:
            row = self.services.store.get_post(post_id)
            if row is None:
                raise PbrbotError(f"post {post_id} is in the index but not in the store: run `pbrbot index`")
            post = self._posts[post_id] = PostText.from_row(row)
            if len(self._posts) > POST_CACHE:
                self._posts.popitem(last=False)
        self._posts.move_to_end(post_id)
        return post

    def forget_posts(self) -> None:
        """Empty the cache of posts split into sentences."""
        self._posts.clear()

    def vectors(self, cands: list[Candidate]) -> np.ndarray:
        """Sentence embeddings: mostly stored by `pbrbot index` (see sentences.py)."""
        return self.text_vectors([c.text for c in cands])

    def text_vectors(self, texts: list[str]) -> np.ndarray:
        return SentenceVectors(self.services.store, self.services.embedder).get(texts)

    def features(self, pool: list[Candidate], query: str) -> np.ndarray:
        searcher = self.services.searcher
        qvec = searcher.query_vector(query)
        # The sentences and their contexts in one lookup.
        both = self.text_vectors([c.text for c in pool] + [c.post.context(c.index) for c in pool]) @ qvec
        return features(pool, query, both[:len(pool)], both[len(pool):], searcher.question_idf(query))

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
            weights = self.services.searcher.idf(side_stems)
            key_stem = max(side_stems, key=lambda s: weights[s])
            svec = self.services.searcher.query_vector(self.services.glossary.expand(f"{side} {question}"))
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

"""Answers as people get them: the answerer's, with the moderators' curation and the readers' votes applied.

After the answerer has scored its candidate sentences (answer.py), one hook here:
1. hidden posts (curation.py) leave the candidates and the related posts, before the quotes are chosen;
2. each quote carries the ids of the passages it was cut from (found here when the answerer left them out);
3. votes move a quote up or down, locally and boundedly: a vote counts for a question in proportion to how
   alike the two questions are (similar.weight: the same question and its rephrasings fully, unrelated ones
   not at all); a user counts once per quote (their latest vote); a vote's weight halves every
   HALF_LIFE_DAYS; the net is squashed so the score moves by at most a factor of e^±LOG_BOUND, so a few
   votes reorder close quotes but cannot bury a strong one;
4. a pinned quote for the question (or a rephrasing) comes first, and answers a question the archive
   could not.
`explain` says why: the ranker's features and score of each quote's best sentence, the votes, the pin.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from pbrbot import asked
from pbrbot.curation import hidden_post_ids, pins
from pbrbot.embedding import Embedder
from pbrbot.feedback import votes as stored_votes
from pbrbot.models import Answer, Quote
from pbrbot.questions import normalise
from pbrbot.ranker import FEATURES
from pbrbot.similar import SAME_QUESTION, question_vectors, weight

EXTRA = 2  # quotes asked for beyond those shown, so a quote voted up can move into view
LOG_BOUND = math.log(2.0)  # votes change a quote's score by at most x2 or /2
VOTE_SCALE = 3.0  # net (weighted) votes at which the change is ~76% of its bound (tanh(1))
HALF_LIFE_DAYS = 180.0
VECTOR_CACHE = 20_000  # question vectors kept in memory (~30 MB): votes and pins are compared on every answer


@dataclass(frozen=True)
class Asker:
    """Who asked, for the questions log (asked.py): source "discord" or "cli"."""

    source: str
    user_id: int | None = None
    guild_id: int | None = None


class Answers:
    """Questions -> curated, vote-adjusted Answers (and why). Typed parts: the store holding the curation,
    votes and questions log; the answerer; `embedder`, a function giving the embedder (loaded on first use:
    a mismatched index is reported before any model is built), and the glossary for question vectors."""

    def __init__(self, store, answerer, embedder: Callable[[], Embedder], glossary):
        self.store, self.answerer, self.embedder, self.glossary = store, answerer, embedder, glossary
        # the last VECTOR_CACHE questions' vectors
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def ask(self, question: str, n: int = 3, asker: Asker | None = None) -> Answer:
        return self.explain(question, n, asker)[0]

    def explain(self, question: str, n: int = 3, asker: Asker | None = None, posts: set[int] | None = None,
                prefer: set[int] | None = None) -> tuple[Answer, dict]:
        """The answer and why it ranked as it did; logged (with the why) when `asker` is given and the
        archive is writable. `posts`, `prefer`: as Answerer.prepare (a period's posts, a conversation's)."""
        prep = self.answerer.prepare(question, posts=posts, prefer=prefer)
        hidden = hidden_post_ids(self.store)
        dropped = sorted({c.post.id for c in prep.pool if c.post.id in hidden})
        if hidden:
            keep = [i for i, c in enumerate(prep.pool) if c.post.id not in hidden]
            prep.pool = [prep.pool[i] for i in keep]
            prep.x = prep.x[keep] if len(keep) else np.zeros((0, prep.x.shape[1] if prep.x.ndim == 2 else 0))
            prep.hits = [h for h in prep.hits if h.post_id not in hidden]
        n = max(1, min(int(n), 10))
        answer = self.answerer.answer(prep, min(n + EXTRA, 10))
        qvec = self.vectors([prep.question])[0]
        rows = []
        if answer.quotes:
            factors = self._vote_factors(qvec, answer.quotes)
            for i, (quote, votes) in enumerate(zip(answer.quotes, factors)):
                rows.append({"url": quote.url, "title": quote.title, "passage_ids": quote.passage_ids,
                             "ranker_score": quote.score, **self._features(prep, quote), "votes": votes,
                             "pinned": False, "_order": i})
                quote.score = round(quote.score * votes["factor"], 4)
            if any(f["factor"] != 1.0 for f in factors):  # votes count here: by the moved scores
                ranked = sorted(zip(answer.quotes, rows), key=lambda qr: (-qr[0].score, qr[1]["_order"]))
                answer.quotes, rows = [q for q, _ in ranked], [r for _, r in ranked]
        pin = self._pin(qvec, hidden)
        if pin is not None:
            quote = pin["quote"].model_copy(deep=True)
            quote.score = max([q.score for q in answer.quotes] + [1.0])
            keep = [i for i, q in enumerate(answer.quotes)
                    if not set(q.passage_ids) & set(quote.passage_ids) and q.link != quote.link]
            answer.quotes = [quote] + [answer.quotes[i] for i in keep]
            rows = [{"url": quote.url, "title": quote.title, "passage_ids": quote.passage_ids, "pinned": True,
                     "pin": {"id": pin["id"], "question": pin["question"], "by": pin["created_by"],
                             "similarity": round(pin["similarity"], 4)}}] + [rows[i] for i in keep]
            answer.found, answer.related = True, []
        answer.quotes, rows = answer.quotes[:n], rows[:n]
        for row in rows:
            row.pop("_order", None)
        why = {"question": answer.question, "found": answer.found, "hidden_posts": dropped, "quotes": rows}
        if asker is not None and not self.store.readonly:
            asked.record(self.store, source=asker.source, user_id=asker.user_id, guild_id=asker.guild_id,
                         answer=answer, explain=why)
        return answer, why

    def define(self, term: str) -> Answer:
        """The answerer's definition, without quotes of hidden posts; quotes carry their passage ids."""
        answer = self.answerer.define(term)
        hidden = hidden_post_ids(self.store)
        if hidden:
            gone = {row["url"] for row in map(self.store.get_post, hidden) if row}
            answer.quotes = [q for q in answer.quotes if q.url not in gone]
            answer.found = answer.found and bool(answer.quotes)
        return answer

    # -- parts --------------------------------------------------------------------------------
    def vectors(self, questions: list[str]) -> np.ndarray:
        """similar.question_vectors, the most recent ones kept in memory."""
        missing = list(dict.fromkeys(q for q in questions if q not in self._vectors))
        if missing:
            for q, v in zip(missing, question_vectors(self.store, self.embedder(), self.glossary, missing)):
                self._vectors[q] = v
        out = []
        for q in questions:
            self._vectors.move_to_end(q)
            out.append(self._vectors[q])
        while len(self._vectors) > VECTOR_CACHE:
            self._vectors.popitem(last=False)
        return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)

    def _features(self, prep, quote: Quote) -> dict:
        """The ranker's features and weight of the quote's best sentence."""
        text = normalise(quote.text)
        best = None
        for i, cand in enumerate(prep.pool):
            if (cand.post.url == quote.url and normalise(cand.text) in text
                    and (best is None or cand.score > prep.pool[best].score)):
                best = i
        if best is None:
            return {"sentence": None, "features": {}}
        return {"sentence": prep.pool[best].text,
                "features": {name: round(float(v), 4) for name, v in zip(FEATURES, prep.x[best])}}

    def _vote_factors(self, qvec: np.ndarray, quotes: list[Quote]) -> list[dict]:
        rows = stored_votes(self.store)
        out = [{"net": 0.0, "up": 0, "down": 0, "factor": 1.0} for _ in quotes]
        if not rows:
            return out
        sims = self.vectors([r["question"] or "" for r in rows]) @ qvec
        now = datetime.now(UTC)
        counting = []  # the votes given for this question or one alike, with their weight (oldest first)
        for row, sim in zip(rows, sims):
            w = weight(float(sim))
            if w > 0:
                age = max(0.0, (now - datetime.fromisoformat(row["created"])).total_seconds() / 86400)
                counting.append((row, set(row["passage_ids"]), w * 0.5 ** (age / HALF_LIFE_DAYS)))
        for slot, quote in zip(out, quotes):
            mine = set(quote.passage_ids)
            # user -> (vote, weight) of their latest vote that counts
            latest: dict[int, tuple[int, float]] = {}
            for row, ids, w in counting:
                if mine & ids:
                    latest[row["user_id"]] = (row["vote"], w)
            net = sum(v * w for v, w in latest.values())
            slot.update(net=round(net, 4), up=sum(1 for v, _ in latest.values() if v > 0),
                        down=sum(1 for v, _ in latest.values() if v < 0),
                        factor=round(math.exp(LOG_BOUND * math.tanh(net / VOTE_SCALE)), 4))
        return out

    def _pin(self, qvec: np.ndarray, hidden: set[int]) -> dict | None:
        """The active pin whose question is most alike this one (at least SAME_QUESTION), if any."""
        active = [p for p in pins(self.store) if p["post_id"] not in hidden]
        if not active:
            return None
        sims = self.vectors([p["question"] for p in active]) @ qvec
        best = int(np.argmax(sims))
        if sims[best] < SAME_QUESTION:
            return None
        return {**active[best], "similarity": float(sims[best])}

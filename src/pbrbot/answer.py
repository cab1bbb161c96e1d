"""Hybrid hits -> the sentences that answer a question -> quoted, linked excerpts, or "not in the archive".

Each candidate sentence (from the top hits' passages, split on the post's own text so every offset is the
post's) is scored against the question: dense cosine of the sentence with the question, the IDF-weighted
share of the question's words it contains, and how well its passage ranked. The best sentences become
quotes of up to MAX_SENTENCES sentences / ~MAX_WORDS words, verbatim from the post; a cut between
non-adjacent sentences of one quote is marked by an ellipsis. Different posts are preferred; of two posts
saying the same, the newer is kept. Comparisons ("X vs Y") get a quote for each side.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from pbrbot.errors import PbrbotError
from pbrbot.fragments import fragment_link
from pbrbot.keywords import query_terms
from pbrbot.models import Answer, Hit, Quote, Related
from pbrbot.questions import (
    _SIDE_STOP,
    TYPE_BONUS,
    answer_type,
    comparison_sides,
    context_stems,
    normalise,
    sentence_stems,
    stem,
    stem_families,
    word_stems,
)
from pbrbot.sentences import _WORD, SHORT_WORDS, PostText, SentenceVectors

ELLIPSIS = " … "
POOL_HITS = 20  # hybrid hits whose sentences are candidates
POST_CACHE = 2000  # posts kept split into sentences (~20 MB)
MAX_SENTENCES = 3
MAX_WORDS = 80
# Weights of the sentence score, and the calibrated "not in the archive" threshold on the best score
# (see tests/calibration-questions.jsonl and `pbrbot eval`).
W_DENSE, W_KEYWORD, W_RANK = 0.55, 0.35, 0.10
FOUND_THRESHOLD = 0.43  # sample archive: out-of-scope best <= 0.36, answerable best >= 0.51
QUOTE_FLOOR = 0.33  # a second or third quote needs at least this score
SIDE_FLOOR = 0.15  # a comparison side's quote needs at least this score against that side
DUPLICATE_JACCARD = 0.7
TOPIC_DISCOUNT = 0.7
HEADING_PENALTY = 0.06
REGION_WEIGHT, REGION_FLOOR = 0.25, 0.3  # a quote's bonus for each other relevant sentence it holds
NEIGHBOUR_MARGIN = 0.1  # a neighbour this close to the sentence's score joins its quote
SAME_POST_PENALTY = 0.03  # per quote already taken from the post
THIRD_PENALTY = 0.06  # and more for a third: different posts are preferred
CONTINUES = re.compile(r"^[\"“‘(]?(this|that|these|those|it|its|they|their|such|but|however|so|and|also|"
                       r"as a result|in other words|instead|which|then|yet|although|otherwise|in particular|"
                       r"for example|for instance|in fact|indeed|therefore|thus|because|hence|consequently)\b",
                       re.IGNORECASE)
# -- candidates ---------------------------------------------------------------------------------
@dataclass
class Candidate:
    post: PostText
    index: int  # sentence number in the post
    rank: int  # best rank of a hit containing it
    dense: float = 0.0
    keyword: float = 0.0
    score: float = 0.0

    @property
    def text(self) -> str:
        return self.post.sentence(self.index)


@dataclass
class Pick:
    post: PostText
    indices: list[int] = field(default_factory=list)
    score: float = 0.0

    def words(self) -> int:
        return sum(len(self.post.sentence(i).split()) for i in self.indices)

    def segments(self) -> list[str]:
        """Runs of adjacent sentences of one block, each a verbatim slice of the post text (whitespace
        normalised): a segment never crosses a block."""
        runs: list[list[int]] = []
        for i in sorted(set(self.indices)):
            if runs and i == runs[-1][-1] + 1 and self.post.block(i) == self.post.block(i - 1):
                runs[-1].append(i)
            else:
                runs.append([i])
        return [normalise(self.post.text[self.post.spans[r[0]][0]:self.post.spans[r[-1]][1]]) for r in runs]


class Answerer:
    """Questions -> Answers. Knows nothing of Discord or the terminal."""

    def __init__(self, services):
        self.services = services
        self._posts: OrderedDict[int, PostText] = OrderedDict()  # the most recently used POST_CACHE

    # -- public -------------------------------------------------------------------------------
    def ask(self, question: str, n: int = 3) -> Answer:
        question = normalise(question or "")
        if not question:
            raise PbrbotError("empty question: ask something about the archive")
        n = max(1, min(int(n), 10))
        glossary = self.services.glossary
        query = glossary.expand(question)  # the searcher expands the question itself
        hits = self.services.searcher.search(question, k=POOL_HITS, per_post=4)
        sides = comparison_sides(question)
        side_hits = {side: self.services.searcher.search(side, k=6, per_post=2) for side in sides}
        pool = self._candidates(hits + [h for hs in side_hits.values() for h in hs])
        if not pool:
            return Answer(question=question, found=False, related=self._related(hits))
        self._score(pool, query)
        best = max(c.score for c in pool)
        if best < FOUND_THRESHOLD:
            return Answer(question=question, found=False, related=self._related(hits))
        picks = self._select(pool, n)
        if sides:
            picks = self._cover_sides(picks, pool, sides, question, n)
        return Answer(question=question, found=True, quotes=[self.make_quote(p) for p in picks])

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

    def _candidates(self, hits: list[Hit]) -> list[Candidate]:
        seen: dict[tuple[int, int], Candidate] = {}
        for rank, hit in enumerate(hits):
            post = self.post_text(hit.post_id)
            inside = [i for i, (s, e) in enumerate(post.spans) if e > hit.start and s < hit.end]
            if not inside:
                continue
            for i in range(max(0, inside[0] - 1), min(len(post.spans), inside[-1] + 2)):
                if not post.is_candidate(i):
                    continue
                key = (post.id, i)
                if key not in seen:
                    seen[key] = Candidate(post, i, rank)
                else:
                    seen[key].rank = min(seen[key].rank, rank)
        return list(seen.values())

    def context(self, cand: Candidate) -> str:
        """The sentence with its neighbours in the paragraph (or the heading above): what it means in place."""
        return cand.post.context(cand.index)

    def vectors(self, cands: list[Candidate], context: bool = False) -> np.ndarray:
        """Sentence (or sentence-in-context) embeddings: mostly stored by `pbrbot index` (see sentences.py)."""
        return self.text_vectors([self.context(c) if context else c.text for c in cands])

    def text_vectors(self, texts: list[str]) -> np.ndarray:
        return SentenceVectors(self.services.store, self.services.embedder).get(texts)

    def idf(self, stems: set[str]) -> dict[str, float]:
        """IDF weight of each stem (`questions.stem`), from the keyword index's term counts."""
        keywords = self.services.searcher.keywords
        total = max(keywords.counted_passages() or self.services.store.count_passages(), 1)
        counts = keywords.prefix_counts(sorted(stems)) or {}
        return {s: math.log(1 + total / (1 + counts.get(s, total))) for s in stems}

    def _score(self, pool: list[Candidate], query: str) -> None:
        qvec = self.services.searcher.query_vector(query)
        # The sentences and their contexts in one lookup.
        both = self.text_vectors([c.text for c in pool] + [self.context(c) for c in pool]) @ qvec
        own, around = both[:len(pool)], both[len(pool):]
        weights = self.idf({stem(t) for t in query_terms(query)})
        have = [sentence_stems(c.post, c.index) for c in pool]
        near = [context_stems(c.post, c.index) for c in pool]  # each holds its sentence's stems
        vocab = frozenset().union(*near)
        family = stem_families(weights, vocab)
        # Words in most candidate sentences are the topic, not what is asked about it: weigh them less.
        for s in weights:
            share = sum(not ps.isdisjoint(family[s]) for ps in have) / len(have)
            weights[s] *= 1.0 - TOPIC_DISCOUNT * share
        total = sum(weights.values()) or 1.0
        wants = answer_type(query)
        asked = set(_WORD.findall(query))
        for cand, d, c, mine, around_me in zip(pool, own, around, have, near):
            cand.dense = float(0.6 * d + 0.4 * c)
            cand.keyword = sum(w if not mine.isdisjoint(family[s]) else
                               (0.5 * w if not around_me.isdisjoint(family[s]) else 0.0)
                               for s, w in weights.items()) / total
            short = HEADING_PENALTY if _is_heading(cand.text) else 0.0  # a heading says little on its own
            bonus = TYPE_BONUS if wants and any(set(_WORD.findall(m.group())) - asked
                                                for m in wants.finditer(cand.text)) else 0.0
            cand.score = (W_DENSE * cand.dense + W_KEYWORD * cand.keyword + W_RANK / (1 + cand.rank / 4)
                          + bonus - short)

    # -- selection ----------------------------------------------------------------------------
    def _select(self, pool: list[Candidate], n: int) -> list[Pick]:
        """Grow the best sentences into quotes (a quote earns a little for each other relevant sentence it
        holds), then take the best quotes, preferring posts not yet quoted and the newer of twins."""
        scores = {(c.post.id, c.index): c.score for c in pool}
        ranked = sorted(pool, key=lambda c: -c.score)
        floor = max(QUOTE_FLOOR, ranked[0].score - 0.25)
        options: list[Pick] = []
        covered: set[tuple[int, int]] = set()
        for cand in ranked:
            if cand.score < floor:
                break
            if (cand.post.id, cand.index) in covered:
                continue
            pick = self._grow(cand, scores)
            others = [scores.get((pick.post.id, i), 0.0) for i in pick.indices if i != cand.index]
            pick.score = cand.score + REGION_WEIGHT * sum(max(0.0, o - REGION_FLOOR) for o in others)
            options.append(pick)
            covered.update((pick.post.id, i) for i in pick.indices)
        picks: list[Pick] = []
        while options and len(picks) < n:
            counts = {p.post.id: 0 for p in picks}
            for p in picks:
                counts[p.post.id] += 1
            best = max(options, key=lambda p: p.score - SAME_POST_PENALTY * counts.get(p.post.id, 0)
                       - (THIRD_PENALTY if counts.get(p.post.id, 0) >= 2 else 0.0))
            options.remove(best)
            twin = self._duplicate(best, picks)
            if twin is not None:  # two posts say the same: keep the newer
                if _date_key(best.post.date) < _date_key(twin.post.date):
                    picks[picks.index(twin)] = Pick(best.post, best.indices, max(best.score, twin.score))
                continue
            near = next((p for p in picks if p.post.id == best.post.id
                         and min(abs(i - j) for i in p.indices for j in best.indices) <= 1), None)
            if near is not None and set(near.indices) & set(best.indices):
                continue
            if near is not None and near.words() + best.words() <= MAX_WORDS + 20:
                near.indices = sorted(set(near.indices) | set(best.indices))
                continue
            picks.append(best)
        return self._order(picks)

    def _grow(self, cand: Candidate, scores: dict[tuple[int, int], float]) -> Pick:
        """The sentence plus the neighbours that continue it, that it introduces ("...:", a question, a
        heading) or that are nearly as relevant; at most MAX_SENTENCES sentences and ~MAX_WORDS words."""
        post = cand.post
        pick = Pick(post, [cand.index], cand.score)

        def words_of(i):
            return len(post.sentence(i).split())

        def relevant(i):
            return scores.get((post.id, i), -1.0) >= cand.score - NEIGHBOUR_MARGIN

        prev = cand.index - 1
        if prev >= 0 and post.is_candidate(prev) and pick.words() + words_of(prev) <= MAX_WORDS \
                and (CONTINUES.match(cand.text) or post.sentence(prev).endswith(":")
                     or (relevant(prev) and not relevant(cand.index + 1))):
            pick.indices.insert(0, prev)
        nxt = cand.index + 1
        while len(pick.indices) < MAX_SENTENCES and nxt < len(post.spans):
            follow, last = post.sentence(nxt), post.sentence(pick.indices[-1])
            leads = pick.words() < SHORT_WORDS or last.endswith((":", "?"))
            wanted = leads or CONTINUES.match(follow) or relevant(nxt)
            if not wanted or not post.is_candidate(nxt) or pick.words() + words_of(nxt) > MAX_WORDS:
                break
            pick.indices.append(nxt)
            nxt += 1
        return pick

    def _duplicate(self, pick: Pick, picks: list[Pick]) -> Pick | None:
        """The pick of another post that says the same as this one, if any."""
        mine = [word_stems(pick.post.sentence(i)) for i in pick.indices]
        for p in picks:
            if p.post.id == pick.post.id:
                continue
            for i in p.indices:
                other = word_stems(p.post.sentence(i))
                if any(len(m & other) / max(len(m | other), 1) >= DUPLICATE_JACCARD for m in mine):
                    return p
        return None

    def _order(self, picks: list[Pick]) -> list[Pick]:
        """Best first; between picks of nearly equal score, the newer post first."""
        return sorted(picks, key=lambda p: (-round(p.score / 0.03), _date_key(p.post.date)))

    def _cover_sides(self, picks: list[Pick], pool: list[Candidate], sides: list[str], question: str,
                     n: int) -> list[Pick]:
        """Make sure each side of a comparison is quoted (when the archive speaks of it at all)."""
        vectors = self.vectors(pool)
        generic = {stem(w) for w in _SIDE_STOP}
        for side in sides:
            side_stems = word_stems(side) - generic
            if not side_stems:
                continue
            if any(side_stems & word_stems(s) for p in picks for s in p.segments()):
                continue
            weights = self.idf(side_stems)
            key_stem = max(side_stems, key=lambda s: weights[s])

            def mentions(text: str) -> bool:
                return key_stem in word_stems(text)

            svec = self.services.searcher.query_vector(self.services.glossary.expand(f"{side} {question}"))
            side_scores = vectors @ svec
            best = None
            for cand, sc in zip(pool, side_scores):
                if mentions(cand.text) and sc >= SIDE_FLOOR and cand.score >= FOUND_THRESHOLD / 2 \
                        and (best is None or sc > best[1]):
                    best = (cand, float(sc))
            if best is None:
                continue
            pick = self._grow(best[0], {(c.post.id, c.index): c.score for c in pool})
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
        return self._order(picks)

    # -- output -------------------------------------------------------------------------------
    def grow_definition(self, post: PostText, index: int, score: float) -> Pick:
        cand = Candidate(post, index, 0, score=score)
        return self._grow(cand, {(post.id, index): score})

    @staticmethod
    def merge_picks(picks: list[Pick]) -> list[Pick]:
        """Picks of one post that overlap or touch become one (kept where the first of them stood)."""
        out: list[Pick] = []
        for pick in picks:
            twin = next((p for p in out if p.post.id == pick.post.id and
                         min(abs(i - j) for i in p.indices for j in pick.indices) <= 1), None)
            if twin is None:
                out.append(Pick(pick.post, list(pick.indices), pick.score))
            else:
                twin.indices = sorted(set(twin.indices) | set(pick.indices))
                twin.score = max(twin.score, pick.score)
        return out

    def make_quote(self, pick: Pick) -> Quote:
        segments = pick.segments()
        post = pick.post
        return Quote(text=ELLIPSIS.join(segments), url=post.url,
                     link=fragment_link(post.url, segments, post.block_texts()),
                     title=quote_title(post, pick.indices[0]), date=post.date, score=round(float(pick.score), 4))

    def _related(self, hits: list[Hit], limit: int = 3) -> list[Related]:
        out: list[Related] = []
        for hit in hits:
            if all(r.url != hit.url for r in out):
                out.append(Related(url=hit.url, title=hit.title))
            if len(out) == limit:
                break
        return out


def quote_title(post: PostText, index: int) -> str:
    """The title a quote is shown under: the post's, or on a listing page the teased post's and the page's."""
    teaser = post.teaser(index)
    return post.title if teaser is None else f"{teaser} (teaser on {post.title})"


def _is_heading(sentence: str) -> bool:
    """A short line without a closing stop: a heading, which starts a new section."""
    return len(sentence.split()) <= 14 and not re.search(r"[.!?…:;\"'”’)]$", sentence.strip())


def _date_key(date: str | None) -> tuple[int, str]:
    """Sort key putting newer dates first and undated posts last."""
    if not date:
        return (1, "")
    return (0, "".join(chr(0x10FFFF - ord(c)) for c in date))

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
from dataclasses import dataclass, field

import numpy as np

from pbrbot.chunking import split_sentences
from pbrbot.errors import PbrbotError
from pbrbot.fragments import fragment_link
from pbrbot.keywords import query_terms
from pbrbot.models import Answer, Hit, Quote, Related

ELLIPSIS = " … "
POOL_HITS = 20  # hybrid hits whose sentences are candidates
MAX_SENTENCES = 3
MAX_WORDS = 80
SHORT_WORDS = 12  # a sentence this short is extended with its neighbour to stand alone
# Weights of the sentence score, and the calibrated "not in the archive" threshold on the best score
# (see tests/calibration-questions.jsonl and `pbrbot eval`).
W_DENSE, W_KEYWORD, W_RANK = 0.55, 0.35, 0.10
FOUND_THRESHOLD = 0.36
SIDE_FLOOR = 0.15  # a comparison side's quote needs at least this score against that side
DUPLICATE_JACCARD = 0.7
CONTINUES = re.compile(r"^[\"“‘(]?(this|that|these|those|it|its|they|their|such|but|however|so|and|also|"
                       r"as a result|in other words|instead|which|then|yet|although|otherwise)\b",
                       re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def stem(word: str) -> str:
    """A crude suffix stripper, applied alike to questions and sentences (run/runs/running match)."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            return w[: -len(suffix)] + repl
    return w


def word_stems(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text)}


# -- comparisons -------------------------------------------------------------------------------
_BETWEEN = re.compile(r"\bdifference(?:s)? between (.+?) and (.+?)[?.!]*$", re.IGNORECASE)
_VERSUS = re.compile(r"\b(?:vs\.?|versus|v\.|compared (?:to|with))\s", re.IGNORECASE)
_SIDE_STOP = set("""a an the is are was were be being been do does did what which who whom how why when
where should would could will can may might of in on for to with about between than there it this that
we i you they their our my your pbr compare comparison difference differences better worse""".split())


def _side_words(words: list[str], from_end: bool) -> str:
    picked: list[str] = []
    for word in (reversed(words) if from_end else words):
        if word.lower().strip("?,.!") in _SIDE_STOP or len(picked) == 3:
            break
        picked.append(word.strip("?,.!\"“”"))
    if from_end:
        picked.reverse()
    return " ".join(p for p in picked if p)


def comparison_sides(question: str) -> list[str]:
    """["X", "Y"] for "X vs Y", "difference between X and Y", "X or Y" questions, else []."""
    q = question.strip()
    m = _BETWEEN.search(q)
    if m:
        return [normalise(m.group(1)), normalise(m.group(2)).rstrip("?.! ")]
    parts = _VERSUS.split(q, maxsplit=1)
    if len(parts) != 2:
        parts = re.split(r"\s+or\s+", q, maxsplit=1, flags=re.IGNORECASE)
    if len(parts) != 2:
        return []
    left, right = _side_words(parts[0].split(), from_end=True), _side_words(parts[1].split(), False)
    return [left, right] if left and right and left.lower() != right.lower() else []


# -- candidates ---------------------------------------------------------------------------------
@dataclass
class PostText:
    id: int
    url: str
    title: str
    date: str | None
    text: str
    spans: list[tuple[int, int]]
    paragraphs: list[int]  # paragraph number of each sentence

    def sentence(self, i: int) -> str:
        s, e = self.spans[i]
        return self.text[s:e]


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
        """Runs of adjacent sentences, each a verbatim slice of the post text (whitespace normalised)."""
        runs: list[list[int]] = []
        for i in sorted(set(self.indices)):
            if runs and i == runs[-1][-1] + 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        return [normalise(self.post.text[self.post.spans[r[0]][0]:self.post.spans[r[-1]][1]]) for r in runs]


class Answerer:
    """Questions -> Answers. Knows nothing of Discord or the terminal."""

    def __init__(self, services):
        self.services = services
        self._posts: dict[int, PostText] = {}
        self._vectors: dict[tuple[int, int, int], np.ndarray] = {}
        self._df: dict[str, int] = {}

    # -- public -------------------------------------------------------------------------------
    def ask(self, question: str, n: int = 3) -> Answer:
        question = normalise(question or "")
        if not question:
            raise PbrbotError("empty question: ask something about the archive")
        n = max(1, min(int(n), 10))
        glossary = self.services.glossary
        query = glossary.expand(question)
        hits = self.services.searcher.search(query, k=POOL_HITS, per_post=4)
        sides = comparison_sides(question)
        side_hits = {side: self.services.searcher.search(glossary.expand(side), k=6, per_post=2)
                     for side in sides}
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
        if post_id not in self._posts:
            row = self.services.store.get_post(post_id)
            if row is None:
                raise PbrbotError(f"post {post_id} is in the index but not in the store: run `pbrbot index`")
            text = row["text"]
            spans = split_sentences(text)
            paragraphs = [text.count("\n\n", 0, s) for s, _ in spans]
            self._posts[post_id] = PostText(row["id"], row["url"], row["title"], row["date"], text, spans,
                                            paragraphs)
        return self._posts[post_id]

    def _candidates(self, hits: list[Hit]) -> list[Candidate]:
        seen: dict[tuple[int, int], Candidate] = {}
        for rank, hit in enumerate(hits):
            post = self.post_text(hit.post_id)
            for i, (s, e) in enumerate(post.spans):
                if e <= hit.start or s >= hit.end or not _WORD.search(post.text[s:e]):
                    continue
                key = (post.id, i)
                if key not in seen:
                    seen[key] = Candidate(post, i, rank)
                else:
                    seen[key].rank = min(seen[key].rank, rank)
        return list(seen.values())

    def vectors(self, cands: list[Candidate]) -> np.ndarray:
        """Sentence embeddings, cached by (post, start, end) for the life of the process."""
        keys = [(c.post.id, *c.post.spans[c.index]) for c in cands]
        missing = [i for i, k in enumerate(keys) if k not in self._vectors]
        if missing:
            encoded = self.services.embedder.encode([cands[i].text for i in missing])
            for i, vec in zip(missing, encoded):
                self._vectors[keys[i]] = vec
        return np.stack([self._vectors[k] for k in keys])

    def idf(self, stems: set[str]) -> dict[str, float]:
        total = max(self.services.store.count_passages(), 1)
        out = {}
        for s in stems:
            if s not in self._df:
                try:
                    row = self.services.store.db.execute(
                        "select count(*) from passages_fts where passages_fts match ?",
                        ['"' + s.replace('"', "") + '"*']).fetchone()
                    self._df[s] = int(row[0])
                except Exception:  # an FTS syntax corner case: treat the word as common
                    self._df[s] = total
            out[s] = math.log(1 + total / (1 + self._df[s]))
        return out

    def _score(self, pool: list[Candidate], query: str) -> None:
        qvec = self.services.embedder.encode_query(query)
        dense = self.vectors(pool) @ qvec
        qstems = {stem(t) for t in query_terms(query)}
        weights = self.idf(qstems)
        total = sum(weights.values()) or 1.0
        for cand, d in zip(pool, dense):
            have = word_stems(cand.text)
            cand.dense = float(d)
            cand.keyword = sum(w for s, w in weights.items() if s in have) / total
            words = len(cand.text.split())
            short = 0.08 if words < 6 else 0.0  # a bare heading says little on its own
            cand.score = (W_DENSE * cand.dense + W_KEYWORD * cand.keyword + W_RANK / (1 + cand.rank / 4)
                          - short)

    # -- selection ----------------------------------------------------------------------------
    def _select(self, pool: list[Candidate], n: int) -> list[Pick]:
        ranked = sorted(pool, key=lambda c: -c.score)
        best = ranked[0].score
        picks: list[Pick] = []
        used: set[tuple[int, int]] = set()
        # First the best sentence of each post that is close enough to the best; then the rest.
        for first_pass in (True, False):
            for cand in ranked:
                if len(picks) >= n:
                    break
                if (cand.post.id, cand.index) in used:
                    continue
                twin = self._duplicate(cand, picks)
                if twin is not None:  # two posts say the same: keep the newer
                    if _date_key(cand.post.date) < _date_key(twin.post.date):
                        picks[picks.index(twin)] = Pick(cand.post, self._grow(cand, pool).indices, twin.score)
                    continue
                same = [p for p in picks if p.post.id == cand.post.id]
                if first_pass and (same or cand.score < max(FOUND_THRESHOLD, best - 0.15)):
                    continue
                if not first_pass and cand.score < max(FOUND_THRESHOLD, best - 0.25):
                    break
                pick = self._grow(cand, pool)
                near = next((p for p in same if min(abs(i - j) for i in p.indices for j in pick.indices) <= 4
                             and p.words() + pick.words() <= MAX_WORDS + 20), None)
                if near is not None:
                    near.indices = sorted(set(near.indices) | set(pick.indices))
                else:
                    picks.append(pick)
                used.update((pick.post.id, i) for i in pick.indices)
        return self._order(picks)

    def _grow(self, cand: Candidate, pool: list[Candidate]) -> Pick:
        """The sentence plus the neighbours that continue it or that it needs to stand alone."""
        post = cand.post
        scores = {c.index: c.score for c in pool if c.post.id == post.id}
        pick = Pick(post, [cand.index], cand.score)

        def words_of(i):
            return len(post.sentence(i).split())

        # The sentence before, when this one leans on it ("This means ...").
        prev = cand.index - 1
        if prev >= 0 and post.paragraphs[prev] == post.paragraphs[cand.index] and CONTINUES.match(cand.text) \
                and pick.words() + words_of(prev) <= MAX_WORDS:
            pick.indices.insert(0, prev)
        nxt = cand.index + 1
        while len(pick.indices) < MAX_SENTENCES and nxt < len(post.spans):
            follow = post.sentence(nxt)
            heading_above = pick.words() < SHORT_WORDS or post.sentence(pick.indices[-1]).endswith((":", "?"))
            same_para = post.paragraphs[nxt] == post.paragraphs[pick.indices[-1]]
            wanted = (heading_above or CONTINUES.match(follow)
                      or scores.get(nxt, -1.0) >= cand.score - 0.05)
            if not wanted or not (same_para or heading_above) or pick.words() + words_of(nxt) > MAX_WORDS:
                break
            pick.indices.append(nxt)
            nxt += 1
        return pick

    def _duplicate(self, cand: Candidate, picks: list[Pick]) -> Pick | None:
        """The pick of another post that says the same as this sentence, if any."""
        mine = word_stems(cand.text)
        for p in picks:
            if p.post.id == cand.post.id:
                continue
            for i in p.indices:
                other = word_stems(p.post.sentence(i))
                if len(mine & other) / max(len(mine | other), 1) >= DUPLICATE_JACCARD:
                    return p
        return None

    def _order(self, picks: list[Pick]) -> list[Pick]:
        """Best first; between picks of nearly equal score, the newer post first."""
        return sorted(picks, key=lambda p: (-round(p.score / 0.03), _date_key(p.post.date)))

    def _cover_sides(self, picks: list[Pick], pool: list[Candidate], sides: list[str], question: str,
                     n: int) -> list[Pick]:
        """Make sure each side of a comparison is quoted (when the archive speaks of it at all)."""
        embedder = self.services.embedder
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

            svec = embedder.encode_query(self.services.glossary.expand(f"{side} {question}"))
            side_scores = vectors @ svec
            best = None
            for cand, sc in zip(pool, side_scores):
                if mentions(cand.text) and sc >= SIDE_FLOOR and cand.score >= FOUND_THRESHOLD / 2 \
                        and (best is None or sc > best[1]):
                    best = (cand, float(sc))
            if best is None:
                continue
            pick = self._grow(best[0], pool)
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
        return self._grow(cand, [cand])

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
        return Quote(text=ELLIPSIS.join(segments), url=post.url, link=fragment_link(post.url, segments, post.text),
                     title=post.title, date=post.date, score=round(float(pick.score), 4))

    def _related(self, hits: list[Hit], limit: int = 3) -> list[Related]:
        out: list[Related] = []
        for hit in hits:
            if all(r.url != hit.url for r in out):
                out.append(Related(url=hit.url, title=hit.title))
            if len(out) == limit:
                break
        return out


def _date_key(date: str | None) -> tuple[int, str]:
    """Sort key putting newer dates first and undated posts last."""
    if not date:
        return (1, "")
    return (0, "".join(chr(0x10FFFF - ord(c)) for c in date))

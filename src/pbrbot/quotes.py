"""Scored candidate sentences -> quotes: growing a sentence into a readable excerpt, choosing and merging
excerpts, ordering them and turning them into linked `Quote`s. Used by the answerer and by `define`.

A quote is up to MAX_SENTENCES sentences / ~MAX_WORDS words, verbatim from the post, widened with the
better-scored neighbouring sentences to a short excerpt of up to WINDOW_WORDS words (RELEVANT_WINDOW_WORDS to
take in a well-scored neighbour); each run of sentences of one block is a segment, segments are joined by an
ellipsis. Different posts are preferred; of two posts
saying the same, the newer is kept. Headings give context but are never quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pbrbot.fragments import fragment_link
from pbrbot.models import Hit, Quote, Related
from pbrbot.questions import normalise, word_stems
from pbrbot.sentences import SHORT_WORDS, PostText

ELLIPSIS = " … "
# 3 -> 4: dev CV evid@3 0.712 -> 0.726 (all 212 labelled 0.777 -> 0.790; hit@1/hit@3/refusal unchanged). Of
# the 17 evidence sentences missed with their post quoted, 7 were the sentence right after a quote, cut by
# the sentence or the word limit; 5 sentences measured as 4 (the word limits bind first); a following
# sentence given 90-100 words of room, or preferred to the one before, measured no better (hit@3 -1)
MAX_SENTENCES = 4
MAX_WORDS = 80
WIDEN_BLOCKS = True  # widening may take in the next paragraph (a separate segment of the quote)
WINDOW_WORDS = 90  # a quote is widened with neighbours of its block up to this many words
# ... and up to this many with a neighbour weighing at least this share of its sentence. 70/90 -> 90/110
# words: quotes 64 -> 71 words on average, evidence@3 out of fold on the labelled questions outside the
# dev set 0.881 -> 0.905 (chosen there: the best of 3 x 3 x 3 sentence and window limits, then the
# shortest quotes), on the dev set 0.712 -> 0.767 (hit@1, hit@3, refusal unchanged). Longer windows
# measured no better outside the dev set (110/110: 77 words; 5-6 sentences alike); what the room buys is
# the sentence after an introduction, which is where the answer most often sits when it is not quoted
RELEVANT_WINDOW_WORDS, RELEVANT_SHARE = 110, 0.2
DUPLICATE_JACCARD = 0.7
OPTIONS = 4  # quotes grown per quote wanted (the rest are hardly ever chosen: 4 and 100 measured alike)
REGION_WEIGHT, REGION_FLOOR = 0.25, 0.3  # a quote's bonus for each other relevant sentence it holds
NEIGHBOUR_MARGIN = 0.1  # a neighbour this close to the sentence's score joins its quote
SAME_POST_FACTOR = 0.5  # a quote's score is multiplied by this for each quote already taken from its post:
# different posts are preferred (scores are weights relative to the best sentence, see Model.rank; 0.7 -> 0.5:
# out-of-fold hit@3 dev 0.863 -> 0.877, all labelled 0.904 -> 0.911, evid@3 alike; 0.4 alike, 0.3 loses evid)
OTHER_POST_SHARE = 0.1  # when all quotes are of one post, the last gives way to another post's best sentence
# weighing at least this share of it (dev CV hit@3 0.85 -> 0.86, evid@3 unchanged; 0.05-0.5 measured)
CONTINUES = re.compile(r"^[\"“‘(]?(this|that|these|those|it|its|they|their|such|but|however|so|and|also|"
                       r"as a result|in other words|instead|which|then|yet|although|otherwise|"
                       r"in particular|for example|for instance|in fact|indeed|therefore|thus|because|hence|"
                       r"consequently)\b",
                       re.IGNORECASE)


@dataclass
class Candidate:
    post: PostText
    index: int  # sentence number in the post
    rank: int  # best rank of a hit containing it
    score: float = 0.0
    passage: float = 0.0  # best dense score of a hit passage holding it

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


def candidates(hits: list[Hit], post_text) -> list[Candidate]:
    """The quotable sentences of the hits' passages and their neighbours (post_text: post id -> PostText)."""
    seen: dict[tuple[int, int], Candidate] = {}
    for rank, hit in enumerate(hits):
        post = post_text(hit.post_id)
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
            seen[key].passage = max(seen[key].passage, hit.dense_score or 0.0)
    return list(seen.values())


def grow(cand: Candidate, scores: dict[tuple[int, int], float]) -> Pick:
    """The sentence plus the neighbours that continue it, that it introduces ("...:", a question) or that are
    nearly as relevant; at most MAX_SENTENCES sentences and ~MAX_WORDS words; never starting with a
    heading."""
    post = cand.post
    pick = Pick(post, [cand.index], cand.score)

    def words_of(i):
        return len(post.sentence(i).split())

    def relevant(i):
        return scores.get((post.id, i), -1e9) >= cand.score - NEIGHBOUR_MARGIN

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
            break  # a heading ends the quote: it is context, never quoted (and on a listing page, the teaser)
        pick.indices.append(nxt)
        nxt += 1
    widen(pick, cand, scores)
    return pick


def widen(pick: Pick, cand: Candidate, scores: dict[tuple[int, int], float]) -> None:
    """Widen a quote to a short excerpt: while it has room (MAX_SENTENCES, WINDOW_WORDS; RELEVANT_WINDOW_WORDS
    for a neighbour weighing RELEVANT_SHARE of the sentence), add the better scored of its two neighbouring
    sentences (context a reader wants; never a heading, never another teaser of a listing page; a neighbour
    in another block is a segment of its own), and never ending on an added sentence that introduces what
    follows (":")."""
    post = cand.post
    while len(pick.indices) < MAX_SENTENCES:
        sides = []
        for i in (pick.indices[0] - 1, pick.indices[-1] + 1):
            score = scores.get((post.id, i), -1e9)
            room = RELEVANT_WINDOW_WORDS if score >= RELEVANT_SHARE * cand.score else WINDOW_WORDS
            if 0 <= i < len(post.spans) and (WIDEN_BLOCKS or post.block(i) == post.block(cand.index)) \
                    and post.is_candidate(i) and post.teaser(i) == post.teaser(cand.index) \
                    and pick.words() + len(post.sentence(i).split()) <= room:
                sides.append((score, i))
        if not sides:
            break
        i = max(sides)[1]
        if i < pick.indices[0]:
            pick.indices.insert(0, i)
        else:
            pick.indices.append(i)
    # context added after the sentence never ends on an introduction whose sequel is left out ("... that:")
    while pick.indices[-1] > cand.index and post.sentence(pick.indices[-1]).rstrip().endswith(":"):
        pick.indices.pop()


def joinable(post: PostText, a: list[int], b: list[int]) -> bool:
    """Whether two sets of sentences of one post may be one quote: they touch or overlap, and on a listing
    page they are of one teaser."""
    return min(abs(i - j) for i in a for j in b) <= 1 and post.teaser(a[0]) == post.teaser(b[0])


def select(pool: list[Candidate], n: int, floor: float) -> list[Pick]:
    """Grow the best sentences into quotes (a quote earns a little for each other relevant sentence it
    holds), then take the best quotes, preferring posts not yet quoted and the newer of twins."""
    scores = {(c.post.id, c.index): c.score for c in pool}
    ranked = sorted(pool, key=lambda c: -c.score)
    options: list[Pick] = []
    covered: set[tuple[int, int]] = set()
    for cand in ranked:
        if (cand.score < floor and options) or len(options) >= OPTIONS * n:
            break
        if (cand.post.id, cand.index) in covered:
            continue
        pick = grow(cand, scores)
        others = [scores.get((pick.post.id, i), 0.0) for i in pick.indices if i != cand.index]
        pick.score = cand.score + REGION_WEIGHT * sum(max(0.0, o - REGION_FLOOR) for o in others)
        options.append(pick)
        covered.update((pick.post.id, i) for i in pick.indices)
    picks: list[Pick] = []
    while options and len(picks) < n:
        counts = {p.post.id: 0 for p in picks}
        for p in picks:
            counts[p.post.id] += 1
        best = max(options, key=lambda p: p.score * SAME_POST_FACTOR ** counts.get(p.post.id, 0))
        options.remove(best)
        twin = duplicate(best, picks)
        if twin is not None:  # two posts say the same: keep the newer
            if date_key(best.post.date) < date_key(twin.post.date):
                picks[picks.index(twin)] = Pick(best.post, best.indices, max(best.score, twin.score))
            continue
        near = next((p for p in picks
                     if p.post.id == best.post.id and joinable(p.post, p.indices, best.indices)), None)
        if near is not None:
            union = sorted(set(near.indices) | set(best.indices))
            if union == near.indices:
                continue
            if Pick(near.post, union).words() <= MAX_WORDS + 20:
                near.indices = union
                continue
            best.indices = [i for i in best.indices if i not in near.indices]  # the rest, as its own quote
        picks.append(best)
    return order(another_post(picks, pool, scores, n))


def another_post(picks: list[Pick], pool: list[Candidate], scores: dict[tuple[int, int], float],
                 n: int) -> list[Pick]:
    """When n >= 3 quotes all come from one post, the last gives way to the best sentence of another post
    if that weighs at least OTHER_POST_SHARE of it: a second post is worth more than a third excerpt."""
    if n < 3 or len(picks) < n or len({p.post.id for p in picks}) > 1:
        return picks
    others = [c for c in pool if c.post.id != picks[0].post.id]
    last = min(picks, key=lambda p: p.score)
    best = max(others, key=lambda c: c.score, default=None)
    if best is None or best.score < OTHER_POST_SHARE * last.score:
        return picks
    pick = grow(best, scores)
    pick.score = best.score
    return [p for p in picks if p is not last] + [pick]


def duplicate(pick: Pick, picks: list[Pick]) -> Pick | None:
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


def order(picks: list[Pick]) -> list[Pick]:
    """Best first; between picks of nearly equal score, the newer post first."""
    return sorted(picks, key=lambda p: (-round(p.score / 0.03), date_key(p.post.date)))


def merge(picks: list[Pick]) -> list[Pick]:
    """Picks of one post that overlap or touch become one (kept where the first of them stood)."""
    out: list[Pick] = []
    for pick in picks:
        twin = next((p for p in out
                     if p.post.id == pick.post.id and joinable(p.post, p.indices, pick.indices)), None)
        if twin is None:
            out.append(Pick(pick.post, list(pick.indices), pick.score))
        else:
            twin.indices = sorted(set(twin.indices) | set(pick.indices))
            twin.score = max(twin.score, pick.score)
    return out


def make_quote(pick: Pick) -> Quote:
    segments = pick.segments()
    post = pick.post
    return Quote(text=ELLIPSIS.join(segments), url=post.url,
                 link=fragment_link(post.url, segments, post.block_texts()),
                 title=quote_title(post, min(pick.indices)), date=post.date,
                 score=round(float(pick.score), 4))


def quote_title(post: PostText, index: int) -> str:
    """The title a quote is shown under: the post's, or on a listing page the teased post's and the page's."""
    teaser = post.teaser(index)
    return post.title if teaser is None else f"{teaser} (teaser on {post.title})"


def related(hits: list[Hit], limit: int = 3) -> list[Related]:
    """The posts of the first hits, once each."""
    out: list[Related] = []
    for hit in hits:
        if all(r.url != hit.url for r in out):
            out.append(Related(url=hit.url, title=hit.title))
        if len(out) == limit:
            break
    return out


def date_key(date: str | None) -> tuple[int, str]:
    """Sort key putting newer dates first and undated posts last."""
    if not date:
        return (1, "")
    return (0, "".join(chr(0x10FFFF - ord(c)) for c in date))

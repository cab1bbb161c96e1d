"""Definition mining: for each glossary term, the archive sentences that define or explain it best.

Mined on the first `define` after the passages or the glossary changed (`Definitions.mine`, all terms at
once: a sentence's owner depends on the other terms) and cached in the meta table, keyed by a stamp of the
passages and the glossary. A sentence scores for
defining cues around the term ("X means", "X is a", "known as", "in other words", "so-called",
"(SIBs)", "to use the jargon"), for meaning what the term's gloss says (dense cosine), and a little for
being short enough to read. A sentence explains a term when it has a defining cue around it or means what
the gloss says (EXPLAINS); two terms share a defining sentence only when it explains both, else it goes to
the term it scores best for. `define` gives the glossary's own gloss first (labelled as the glossary's, not
a quote), then the archive's explanations, or says it has none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Protocol

import numpy as np

from pbrbot import passages
from pbrbot.embedding import Embedder
from pbrbot.errors import PbrbotError
from pbrbot.glossary import Glossary, Term, form_pattern
from pbrbot.keywords import KeywordIndex
from pbrbot.models import Answer, Quote
from pbrbot.quotes import Candidate, Pick, grow, merge
from pbrbot.sentences import PostText
from pbrbot.store import Store

log = logging.getLogger(__name__)

META_KEY = "definitions.v2"  # v2: exclusive sentences, "defines"
PER_TERM = 3
CANDIDATE_PASSAGES = 60
EMBED_AT_MOST = 24  # candidates (best cues first) scored by meaning
DEFINING_CUE = 3.0  # cue_score of a sentence with a defining cue around the term ("X means", "known as X")
EXPLAINS = 0.7  # or a dense cosine with the term's gloss at least this
_CUE_AFTER = r"\s*(?:\([^)]{1,60}\)\s*)?[,:]?\s*(?:is|are|was|were|means?|meant|refers? to|describes?|" \
             r"involves?|happens? when|occurs? when|is defined as|is known as|is a term)\b"
_CUE_BEFORE = r"(?:known as|called|so-called|termed|in other words|i\.e\.|that is|described as|" \
              r"referred to as|defined as|definition of|meaning of|concept of|idea of)\W{1,3}"
_JARGON = re.compile(r"\b(jargon|the term|this term|definition|defined|in other words|known as|"
                     r"so-called|means|stands for)\b", re.IGNORECASE)


class UnknownTerm(PbrbotError):
    """A term that is not in the glossary; `suggestions` are the nearest known names."""

    def __init__(self, term: str, suggestions: list[str]):
        self.term, self.suggestions = term, suggestions
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown term {term!r}{hint} (`pbrbot terms` lists them all)")


def cue_score(term: Term, sentence: str) -> float:
    """How much a sentence reads like a definition of the term (0 when it does not name the term)."""
    best = 0.0
    for form in term.forms:
        pattern = form_pattern(form)
        if not re.search(pattern, sentence, re.IGNORECASE):
            continue
        score = 1.0
        if re.search(pattern + _CUE_AFTER, sentence, re.IGNORECASE):
            score += 2.0
        if re.search(_CUE_BEFORE + r"[\"“‘']?" + pattern, sentence, re.IGNORECASE):
            score += 2.0
        if re.search(r"[\"“‘(]" + pattern + r"[\"”’)]", sentence, re.IGNORECASE):
            score += 1.0  # "(SIBs)", “Cherry Picking”: the writer flags the term
        best = max(best, score)
    if best and _JARGON.search(sentence):
        best += 1.0
    return best


def choose(scored: list[dict]) -> list[dict]:
    """The best PER_TERM, different posts first."""
    chosen: list[dict] = []
    posts: set[int] = set()
    for first_pass in (True, False):
        for item in scored:
            if len(chosen) == PER_TERM:
                break
            if item in chosen or (first_pass and item["post_id"] in posts):
                continue
            chosen.append(item)
            posts.add(item["post_id"])
    return chosen


def exclusive(mined: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each term's chosen sentences, a sentence kept for several terms only when it defines each of them
    (else only for the term it scores best for)."""
    owners: dict[tuple[int, int], list[tuple[float, str]]] = {}
    for name, items in mined.items():
        for item in items:
            owners.setdefault((item["post_id"], item["index"]), []).append((item["score"], name))
    out = {}
    for name, items in mined.items():
        kept = []
        for item in items:
            rivals = owners[(item["post_id"], item["index"])]
            if item.get("defines") or max(rivals)[1] == name:
                kept.append(item)
        out[name] = choose(kept)
    return out


def lookup(glossary: Glossary, text: str) -> Term:
    term = glossary.get(text or "")
    if term is None:
        raise UnknownTerm((text or "").strip(), glossary.suggest(text or "", limit=5))
    return term


class PostSource(Protocol):
    """Where definitions read posts split into sentences and their stored vectors: the Answerer."""

    def post_text(self, post_id: int) -> PostText: ...

    def vectors(self, cands: list[Candidate]) -> np.ndarray: ...

    def quote(self, pick: Pick) -> Quote: ...


class Definitions:
    """The glossary's terms as the archive explains them: mined from the store, cached in its meta table."""

    def __init__(self, store: Store, glossary: Glossary, embedder: Embedder, posts: PostSource):
        self.store, self.glossary, self.embedder, self.posts = store, glossary, embedder, posts

    def stamp(self) -> str:
        """Changes whenever the passages or the glossary change."""
        n, top, total = passages.fingerprint(self.store)
        terms = json.dumps([t.as_dict() for t in self.glossary.terms()], sort_keys=True)
        return f"{n}:{top}:{total}:{hashlib.sha256(terms.encode()).hexdigest()[:12]}"

    def mine_term(self, term: Term) -> list[dict]:
        """Every archive sentence that explains one term: [{"post_id", "index", "score", "defines"}], best
        first."""
        cands = []
        spans = KeywordIndex(self.store).phrase_spans(list(term.forms), CANDIDATE_PASSAGES)
        for post_id, start, end in spans:
            post = self.posts.post_text(post_id)
            for i, (s, e) in enumerate(post.spans):
                if e > start and s < end:
                    cue = cue_score(term, post.text[s:e])
                    if cue:
                        cands.append((post, i, cue))
        if not cands:
            return []
        unique = list({(p.id, i): (p, i, c) for p, i, c in cands}.values())
        unique.sort(key=lambda item: -item[2])
        unique = unique[:EMBED_AT_MOST]
        probe = f"What is {term.name}? {term.expansion}. {term.gloss}"
        qvec = self.embedder.encode_query(probe)
        vectors = self.posts.vectors([Candidate(p, i, 0) for p, i, _ in unique])
        scored = []
        for (post, i, cue), dense in zip(unique, vectors @ qvec, strict=True):
            if cue < DEFINING_CUE and dense < EXPLAINS:
                continue  # names the term without explaining it
            words = len(post.sentence(i).split())
            length = -0.3 if words > 60 else (-0.3 if words < 6 else 0.0)
            score = round(cue * 0.25 + float(dense) + length, 4)
            scored.append({"post_id": post.id, "index": i, "score": score, "defines": cue >= DEFINING_CUE})
        scored.sort(key=lambda d: -d["score"])
        return scored

    def _load(self) -> dict:
        """The cached {term name: [...]} for the current stamp (empty when stale)."""
        raw = self.store.get_meta(META_KEY)
        data = json.loads(raw) if raw else {}
        return data.get("terms", {}) if data.get("stamp") == self.stamp() else {}

    def _save(self, mined: dict) -> None:
        if self.store.readonly:  # a read-only archive: mined again next time
            return
        self.store.set_meta(META_KEY, json.dumps({"stamp": self.stamp(), "terms": mined}))

    def mine(self, progress: Callable[[int, int], None] | None = None) -> dict:
        """Mine every glossary term and cache the result in the meta table (`of` calls this when the cache
        is stale). Returns {term name: [{"post_id", "index", "score"}]}."""
        terms = self.glossary.terms()
        mined = {}
        for n, term in enumerate(terms, start=1):
            mined[term.name] = self.mine_term(term)
            if progress:
                progress(n, len(terms))
        mined = exclusive(mined)
        self._save(mined)
        log.info("mined definitions for %d of %d terms", sum(bool(v) for v in mined.values()), len(terms))
        return mined

    def of(self, term: Term) -> list[dict]:
        """A term's mined definitions, mining every term again when the cache is stale (a sentence's owner
        depends on the other terms)."""
        mined = self._load()
        if term.name not in mined:
            mined = self.mine()
        return mined.get(term.name, [])

    def define(self, text: str) -> Answer:
        """The glossary's gloss of a term, then the archive's own explanations of it as quotes
        (found=false when the archive has none)."""
        term = lookup(self.glossary, text)
        picks = []
        for item in self.of(term):
            post = self.posts.post_text(item["post_id"])
            if item["index"] < len(post.spans):
                cand = Candidate(post, item["index"], 0, score=item["score"])
                picks.append(grow(cand, {(post.id, cand.index): cand.score}))
        quotes = [self.posts.quote(p) for p in merge(picks)]
        return Answer(question=(text or "").strip(), found=bool(quotes), quotes=quotes, term=term.name,
                      gloss=term.gloss or term.expansion or None)

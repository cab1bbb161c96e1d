"""Late chunking: the answerer's sentence vectors pooled from their passages' own pass through the model.

A post's passages are embedded once (`Embedder.encode_tokens`): each passage's vector is the mean of all its
tokens, exactly as `encode` makes it, and each of the post's sentence texts (`sentences.sentence_texts`: a
candidate sentence, or a sentence with its neighbours) gets the normalised mean of the token states that lie
inside its characters. So a sentence is read in its passage's context, and the model runs over each passage
once instead of over the passage and then again over every sentence and every context (the sentence texts
were ~3x the passages' tokens).

Where a text's characters come from:
- a text inside one passage: that passage's tokens (the title that heads every passage is left out);
- a text in two passages (passages repeat the sentence at a seam) or across a seam (a context): the passage
  holding most of it first, then the others for the characters still missing, each character's token once;
- a text some of whose letters or digits no pass covers (chrome lines that are in no passage; the tail of a
  passage longer than the model's 256 tokens, cut off): embedded alone, as before late chunking.

`pooled_vectors` is the other way round (method "pooled"): each sentence is run alone, its vector exactly as
`encode` makes it, and a context (a sentence with its neighbours) is the normalised mean of its sentences'
word-token states, so no context is run through the model (contexts were ~55% of the sentence texts' tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pbrbot.embedding import Embedder, embedding_text, mean_pool, normalise

if TYPE_CHECKING:
    from pbrbot.sentences import PostText


@dataclass
class LateVectors:
    passages: dict[int, np.ndarray] = field(default_factory=dict)  # passage id -> its vector
    texts: dict[str, np.ndarray] = field(default_factory=dict)  # sentence text -> its vector
    alone: int = 0  # texts the passes did not cover, embedded alone


def whole(hidden: np.ndarray) -> np.ndarray:
    """The vector of a whole pass (every token's state pooled): what `Embedder.encode` gives its text."""
    return mean_pool(hidden[None], np.ones((1, len(hidden))))[0]


def late_vectors(embedder: Embedder, posts: Sequence[PostText],
                 passage_spans: dict[int, list[tuple[int, int, int]]],
                 batch_size: int | None = None) -> LateVectors:
    """The passage vectors and the sentence-text vectors of `posts`, from one pass over their passages.
    `passage_spans`: post id -> its passages' (id, start, end) in the post's text."""
    jobs: list[tuple[PostText, int, int, int]] = []  # (post, passage id, start, end)
    for post in posts:
        jobs.extend((post, pid, start, end) for pid, start, end in passage_spans.get(post.id, []))
    titled = [embedding_text(post.title, post.text[start:end]) for post, _, start, end in jobs]
    states = embedder.encode_tokens(titled, batch_size=batch_size)
    out = LateVectors()
    by_post: dict[int, list[tuple[int, int, np.ndarray, np.ndarray]]] = {}
    for (post, pid, start, end), text, (hidden, offsets) in zip(jobs, titled, states, strict=True):
        out.passages[pid] = whole(hidden)
        prefix = len(text) - (end - start)  # the title and its newline
        by_post.setdefault(post.id, []).append((start, end, *_in_post(hidden, offsets, prefix, start)))
    missing: list[str] = []
    for post in posts:
        pieces = by_post.get(post.id, [])
        for s, e in post.text_spans():
            text = post.text[s:e]
            if text in out.texts:
                continue
            vector = pool_span(post.text, s, e, pieces)
            if vector is None:
                missing.append(text)
            else:
                out.texts[text] = vector
    missing = list(dict.fromkeys(missing))
    if missing:
        out.texts.update(zip(missing, embedder.encode(missing, batch_size=batch_size)))
        out.alone = len(missing)
    return out


def _in_post(hidden: np.ndarray, offsets: np.ndarray, prefix: int,
             start: int) -> tuple[np.ndarray, np.ndarray]:
    """A passage's tokens of its text proper (not the title before it, not [CLS]/[SEP]), their offsets moved
    into the post's text (the passage's text begins `prefix` characters into what was embedded)."""
    keep = (offsets[:, 1] > offsets[:, 0]) & (offsets[:, 0] >= prefix)
    return hidden[keep], offsets[keep] - prefix + start


def pool_span(text: str, s: int, e: int, pieces: list[tuple[int, int, np.ndarray, np.ndarray]]) \
        -> np.ndarray | None:
    """The normalised mean of the token states inside text[s:e], taken from the `pieces` (start, end, token
    states, token offsets in `text`) overlapping it, most overlap first, each character once; None when a
    letter or digit of the span is in no piece's tokens."""
    covered = np.zeros(e - s, dtype=bool)
    rows: list[np.ndarray] = []
    overlapping = sorted((p for p in pieces if p[0] < e and p[1] > s),
                         key=lambda p: min(e, p[1]) - max(s, p[0]), reverse=True)
    for _, _, hidden, offsets in overlapping:
        inside = np.flatnonzero((offsets[:, 0] >= s) & (offsets[:, 1] <= e))
        for t in inside:
            a, b = int(offsets[t, 0]) - s, int(offsets[t, 1]) - s
            if not covered[a:b].any():
                covered[a:b] = True
                rows.append(hidden[t])
    if not rows or any(ch.isalnum() for ch, done in zip(text[s:e], covered) if not done):
        return None
    return normalise(np.mean(rows, axis=0)).astype(np.float32)


def pooled_vectors(embedder: Embedder, posts: Sequence[PostText],
                   batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Method "pooled": every sentence text of `posts`, the sentences embedded alone and each context pooled
    from the token states of its sentences' own passes ([CLS] and [SEP] left out)."""
    ranges = [(post, i, *post.context_range(i)) for post in posts for i in range(len(post.spans))
              if post.is_candidate(i)]
    sentences = list(dict.fromkeys(post.sentence(j) for post, _, lo, hi in ranges for j in range(lo, hi + 1)))
    words: dict[str, tuple[np.ndarray, int]] = {}  # sentence -> (sum of its word tokens' states, their count)
    out: dict[str, np.ndarray] = {}
    for text, (hidden, offsets) in zip(sentences, embedder.encode_tokens(sentences, batch_size=batch_size),
                                       strict=True):
        out[text] = whole(hidden)
        keep = offsets[:, 1] > offsets[:, 0]
        words[text] = (hidden[keep].sum(axis=0), int(keep.sum()))
    for post, i, lo, hi in ranges:
        context = post.context(i)
        if context not in out:
            parts = [words[post.sentence(j)] for j in range(lo, hi + 1)]
            summed = np.sum([v for v, _ in parts], axis=0)
            out[context] = normalise(summed / max(sum(n for _, n in parts), 1)).astype(np.float32)
    wanted = {post.text[s:e] for post in posts for s, e in post.text_spans()}  # not a heading's own
    return {text: vector for text, vector in out.items() if text in wanted}

"""A post's sentences, the texts the answerer embeds for them, and those embeddings kept for good.

The answerer scores each candidate sentence by the embedding of the sentence alone and of the sentence in
its context (`PostText.context`). Embedding 100-200 of them per question was most of a question's time,
so `run_index` embeds every post's `sentence_texts` once and `SentenceVectors` keeps them in the store
(table sentence_vectors, sentence_table.py's, keyed by model name and a hash of the text) behind a
process-wide memory cache.
It is only a cache: a text missing from it (an index run killed mid-way, a post the indexer has not seen)
is embedded when asked for and written back. Vectors are kept as float16 and every vector handed out has
been through that rounding, so an answer is the same whether its vectors came from the table or not.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pbrbot import sentence_table
from pbrbot.blocks import Span, stored_spans
from pbrbot.chunking import loads_sentences, post_sentences

# How sentence vectors are made: see SentenceVectors and late.py
ALONE, LATE, POOLED = "alone", "late", "pooled"

log = logging.getLogger(__name__)

SHORT_WORDS = 12  # a sentence this short is extended with its neighbour to stand alone
MEMORY_CACHE = 200_000  # vectors kept in memory (~150 MB at most with 384 float16 dimensions)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_MEMORY: dict[tuple[str, str], np.ndarray] = {}  # (model name, text) -> float16 vector
_MEMORY_LOCK = threading.Lock()


@dataclass
class PostText:
    """A stored post split into sentences, each inside one block of the post's layout (blocks.py)."""

    id: int
    url: str
    title: str
    date: str | None
    text: str
    spans: list[tuple[int, int]]  # each sentence's (start, end) in text
    paragraphs: list[int]  # block number of each sentence (the same as block(i))
    blocks: list[Span] = field(default_factory=list)  # (kind, start, end) of each block
    listing: bool = False  # a listing page: teasers of other posts, each quoted on its own (see teaser)
    memo: dict = field(default_factory=dict, repr=False, compare=False)  # derived values, computed once

    @classmethod
    def from_row(cls, row: dict) -> PostText:
        text = row["text"]
        blocks = stored_spans(text, row.get("blocks"))
        stored = loads_sentences(row.get("sentences"))  # split when it was stored (store.upsert_post)
        spans, numbers = stored if stored is not None else post_sentences(text, blocks)
        return cls(row["id"], row["url"], row["title"], row.get("date"), text, spans, numbers, blocks,
                   row.get("kind") == "listing")

    def sentence(self, i: int) -> str:
        s, e = self.spans[i]
        return self.text[s:e]

    def block(self, i: int) -> int:
        """The number of the block sentence i lies in (an index into `blocks`)."""
        return self.paragraphs[i]

    def kind(self, i: int) -> str:
        """The kind of sentence i's block: "p", "h" (heading), "li" (list item), "quote" or "caption"."""
        return self.blocks[self.paragraphs[i]][0]

    def block_text(self, n: int) -> str:
        """The text of block n."""
        _, s, e = self.blocks[n]
        return self.text[s:e]

    def block_texts(self) -> list[str]:
        """Every block's text, in order: the page as a text fragment is matched against it."""
        if "block_texts" not in self.memo:
            self.memo["block_texts"] = [self.block_text(n) for n in range(len(self.blocks))]
        return self.memo["block_texts"]

    def is_candidate(self, i: int) -> bool:
        """Whether sentence i can be quoted at all: it has a word and it is not a heading. (A heading still
        gives context: see context_range.) Quotes grow only across candidates, so on a listing page a quote
        stays inside one teaser."""
        return self.kind(i) != "h" and bool(_WORD.search(self.sentence(i)))

    def teaser(self, i: int) -> str | None:
        """On a listing page, the heading of the teaser that sentence i belongs to (the teased post's title),
        else None."""
        if not self.listing:
            return None
        for n in range(self.block(i) - 1, -1, -1):
            if self.blocks[n][0] == "h":
                return self.block_text(n)
        return None

    def context_range(self, i: int) -> tuple[int, int]:
        """First and last sentence of sentence i's context: its neighbours in the block (or the heading or
        short line above)."""
        lo = i - 1 if i > 0 and (self.paragraphs[i - 1] == self.paragraphs[i] or self.kind(i - 1) == "h"
                                  or len(self.sentence(i - 1).split()) < SHORT_WORDS) else i
        hi = i + 1 if i + 1 < len(self.spans) and self.paragraphs[i + 1] == self.paragraphs[i] else i
        return lo, hi

    def context_span(self, i: int) -> tuple[int, int]:
        """(start, end) of `context(i)` in text."""
        lo, hi = self.context_range(i)
        return self.spans[lo][0], self.spans[hi][1]

    def context(self, i: int) -> str:
        """Sentence i with its neighbours in the paragraph (or the heading above): what it means in place."""
        s, e = self.context_span(i)
        return self.text[s:e]

    def text_spans(self) -> list[tuple[int, int]]:
        """(start, end) of every text the answerer may embed for this post: each candidate sentence and its
        context, in order (a text may come twice: `sentence_texts` keeps it once)."""
        out: list[tuple[int, int]] = []
        for i in range(len(self.spans)):
            if self.is_candidate(i):
                out.extend((self.spans[i], self.context_span(i)))
        return out


def sentence_texts(post: PostText) -> list[str]:
    """Every text the answerer may embed for this post: each candidate sentence and its context, once each."""
    return list(dict.fromkeys(post.text[s:e] for s, e in post.text_spans()))


def text_key(text: str) -> bytes:
    """The table key of a text: 16 bytes of its SHA-256 (collisions are out of reach at any archive size)."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class SentenceVectors:
    """Texts -> embeddings through the memory cache, then the store's table, then the model.

    `method` is how the archive's vectors are made: ALONE, each text embedded on its own; LATE, pooled from
    its passage's pass; POOLED, a sentence alone and a context pooled from its sentences' passes (late.py).
    Each is stored under its own name, so they are never mixed."""

    def __init__(self, store, embedder, method: str = ALONE):
        self.store, self.embedder, self.method = store, embedder, method
        self.name = embedder.name if method == ALONE else f"{embedder.name}+{method}"

    def get(self, texts: list[str], posts: Sequence[PostText] = ()) -> np.ndarray:
        """float32 vectors of `texts` (shape (len(texts), dim)); what was not stored is embedded and
        stored. Late or pooled vectors of a text missing from the table are made from those of `posts` (the
        texts' posts) that hold it."""
        name = self.name
        with _MEMORY_LOCK:
            found = {t: _MEMORY[(name, t)] for t in texts if (name, t) in _MEMORY}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = self._load(missing)
            rest = [t for t in missing if t not in fresh]
            if rest and self.method != ALONE:
                fresh.update(self._made(rest, posts))
                rest = [t for t in rest if t not in fresh]
            fresh.update(self._encode(rest, strict=False))
            with _MEMORY_LOCK:
                if len(_MEMORY) + len(fresh) > MEMORY_CACHE:
                    _MEMORY.clear()
                _MEMORY.update(((name, t), v) for t, v in fresh.items())
            found.update(fresh)
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32)

    def missing(self, texts: list[str]) -> list[str]:
        """Those of `texts` the table lacks, each once, in order."""
        texts = list(dict.fromkeys(texts))
        have = sentence_table.stored_keys(self.store, self.name, [text_key(t) for t in texts])
        return [t for t in texts if text_key(t) not in have]

    def put(self, texts: list[str], batch_size: int | None = None,
            posts_done: Sequence[tuple[int, str]] = ()) -> int:
        """Embed and store `texts` (the memory cache is left alone), marking the posts (id, content_hash)
        they came from as done in the same transaction. Returns how many texts."""
        self._encode(texts, batch_size, posts_done=posts_done)
        return len(texts)

    def put_vectors(self, vectors: dict[str, np.ndarray], posts_done: Sequence[tuple[int, str]] = ()) -> dict:
        """Store ready-made vectors (late.py's) as `put` does; returns them as stored (float16)."""
        return self._save(list(vectors), np.asarray(list(vectors.values())).astype("<f2") if vectors else [],
                          True, posts_done)

    def _made(self, texts: list[str], posts: Sequence[PostText]) -> dict[str, np.ndarray]:
        """Late or pooled vectors of the posts holding `texts`, stored (every text of those posts)."""
        from pbrbot import passages
        from pbrbot.late import late_vectors, pooled_vectors

        wanted = set(texts)
        holding = [p for p in {p.id: p for p in posts}.values() if wanted.intersection(sentence_texts(p))]
        if not holding:
            return {}
        if self.method == LATE:
            spans = passages.spans_by_post(self.store, [p.id for p in holding])
            made = late_vectors(self.embedder, holding, spans).texts
        else:
            made = pooled_vectors(self.embedder, holding)
        return self._save(list(made), np.asarray(list(made.values())).astype("<f2"), False, ())

    def _load(self, texts: list[str]) -> dict[str, np.ndarray]:
        keys = {text_key(t): t for t in texts}
        rows = sentence_table.get_vectors(self.store, self.name, list(keys))
        return {keys[k]: np.frombuffer(blob, dtype="<f2") for k, blob in rows.items()}

    def _encode(self, texts: list[str], batch_size: int | None = None, strict: bool = True,
                posts_done: Sequence[tuple[int, str]] = ()) -> dict[str, np.ndarray]:
        """Embed and store `texts`."""
        if not texts and not posts_done:
            return {}
        half = self.embedder.encode(texts, batch_size=batch_size).astype("<f2") if texts else []
        return self._save(texts, half, strict, posts_done)

    def _save(self, texts: list[str], half, strict: bool, posts_done: Sequence[tuple[int, str]]) \
            -> dict[str, np.ndarray]:
        """Store float16 vectors. Not `strict`: a store that cannot be written (locked too long, read-only)
        costs only the saving, never the answer."""
        try:  # (each thread writes through its own connection: Store.db)
            items = [(text_key(t), v.tobytes()) for t, v in zip(texts, half, strict=True)]
            sentence_table.put_vectors(self.store, self.name, items, posts_done)
        except sqlite3.Error as exc:
            if strict:
                raise
            log.warning("sentence vectors not saved: %s", exc)
        return dict(zip(texts, half))


def clear_memory() -> None:
    """Forget the process-wide cache (the table stays)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()

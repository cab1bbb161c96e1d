"""Synthetic archives for `pbrbot bench`: posts recombined from the sample's sentences with words varied,
most of them moved to other topics (their words swapped for made-up ones, so that as in a real archive a
question's words grow rarer as the archive grows), stored, chunked and keyword-indexed like real ones;
vectors are the real embeddings of the first passages and perturbations of them above, so queries still
have meaningful neighbours. Like an indexed archive, every
post has its answerer's sentence vectors stored (table sentence_vectors, posts.sentences_hash set): the real
ones of the first posts' texts, perturbations of their family's ones for the rest."""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from pbrbot import passages, sentence_table
from pbrbot.blocks import dumps, layout, text_blocks
from pbrbot.chunking import chunk_post, split_sentences
from pbrbot.embedding import embedder_name
from pbrbot.keywords import STOPWORDS
from pbrbot.models import content_hash
from pbrbot.sentences import PostText, sentence_texts, text_key
from pbrbot.store import Store

GENERATOR_VERSION = 5  # 2: sentence vectors; 3: off-topic posts; 4: block layouts; 5: sentence layouts
NOISE = 0.5  # synthetic vector = normalise(parent + NOISE * gaussian of norm ~1): cosine ~0.9 to parent
FAMILY_SUBST = 0.10  # share of words replaced in a base post, and again in each variant of it
VARIANT_SUBST = 0.08
_SUBST_WORD = re.compile(r"\b[a-z]{4,}\b")
# Only 1 post in ON_TOPIC_EVERY (beyond the families) keeps the sample's words. Each other post is on one of
# TOPICS topics, which maps every word of 4+ letters but stopwords to a made-up word drawn from a Zipf
# distribution over MADE_UP_WORDS: a long tail of rare words, as a real archive has, and the sample's
# topic words in ~2.5% of the posts whatever the size.
ON_TOPIC_EVERY = 40
TOPICS = 500
MADE_UP_WORDS = 50_000
_TOPIC_WORD = re.compile(r"\b[A-Za-z][a-z]{3,}\b")  # a word of the vocab, capitalised or not
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70


class Generator:
    """Deterministic posts: family f = k % families; each post varies its family's words a little."""

    def __init__(self, sentences: list[str], seed: int):
        if not sentences:
            raise ValueError("no sentences to recombine")
        self.sentences = sentences
        self.vocab = sorted({w for s in sentences for w in _SUBST_WORD.findall(s)})
        self.topic_vocab = sorted({w.lower() for s in sentences for w in _TOPIC_WORD.findall(s)} - STOPWORDS)
        self.seed = seed
        self.families = 1
        self._topics: dict[int, dict[str, str]] = {}
        self._zipf = list(itertools.accumulate(1 / rank for rank in range(1, MADE_UP_WORDS + 1)))

    def _vary(self, text: str, rng: random.Random, share: float) -> str:
        return _SUBST_WORD.sub(lambda m: rng.choice(self.vocab) if rng.random() < share else m.group(), text)

    def family(self, f: int) -> tuple[str, str]:
        rng = random.Random(f"{self.seed}:family:{f}")
        paragraphs = [" ".join(rng.choice(self.sentences) for _ in range(rng.randint(2, 5)))
                      for _ in range(rng.randint(4, 9))]
        title = " ".join(rng.choice(self.sentences).split()[:rng.randint(4, 9)]).rstrip(".,;:")
        return self._vary(title, rng, FAMILY_SUBST), self._vary("\n\n".join(paragraphs), rng, FAMILY_SUBST)

    def topic_of(self, k: int) -> int:
        """0 for the sample's own topic (the families, and every ON_TOPIC_EVERY-th round of them), else a
        topic in 1..TOPICS."""
        return 0 if (k // self.families) % ON_TOPIC_EVERY == 0 else 1 + (k * 7919) % TOPICS

    def _topic_words(self, topic: int) -> dict[str, str]:
        words = self._topics.get(topic)
        if words is None:
            rng = random.Random(f"{self.seed}:topic:{topic}")
            ranks = rng.choices(range(MADE_UP_WORDS), cum_weights=self._zipf, k=len(self.topic_vocab))
            words = self._topics[topic] = {w: _made_up(r) for w, r in zip(self.topic_vocab, ranks)}
        return words

    def post(self, k: int) -> dict:
        f = k % self.families
        title, text = self.family(f)
        if k >= self.families:
            rng = random.Random(f"{self.seed}:post:{k}")
            title, text = self._vary(title, rng, VARIANT_SUBST), self._vary(text, rng, VARIANT_SUBST)
            topic = self.topic_of(k)
            if topic:
                words = self._topic_words(topic)
                title, text = (_TOPIC_WORD.sub(lambda m: _swap(m.group(), words), t) for t in (title, text))
        day = date(2011, 1, 1) + timedelta(days=k % 5000)
        return {"id": k + 1, "url": f"https://bench.invalid/{k}/", "title": title, "text": text,
                "date": day.isoformat(), "family": f}


def _swap(word: str, words: dict[str, str]) -> str:
    made_up = words.get(word.lower())
    return word if made_up is None else made_up.capitalize() if word[0].isupper() else made_up


def _made_up(rank: int) -> str:
    """The made-up word of a Zipf rank: 2+ syllables, distinct per rank, never an English word of the
    vocab."""
    syllables = []
    rank += len(_SYLLABLES)  # at least two syllables, so at least 4 letters
    while rank:
        rank, digit = divmod(rank, len(_SYLLABLES))
        syllables.append(_SYLLABLES[digit])
    return "".join(syllables) + "x"


@dataclass
class SentenceBase:
    """The real sentence vectors of the family posts, as `run_index` stored them in the real archive."""

    real: dict[bytes, bytes]  # text key -> stored float16 vector
    # float32 (texts, dim): each family's texts in `sentence_texts` order, one after another
    stacked: np.ndarray
    offset: dict[int, int]  # family -> its first row in `stacked`
    count: dict[int, int]  # family -> its number of texts

    @classmethod
    def from_store(cls, store, model: str, family_of: Callable[[str], int]) -> SentenceBase:
        real, parts, offset, count, n = {}, [], {}, {}, 0
        for row in store.iter_posts(order_by="id"):
            keys = [text_key(t) for t in sentence_texts(PostText.from_row(row))]
            stored = sentence_table.get_vectors(store, model, keys)
            missing = [k for k in keys if k not in stored]
            if missing or not keys:
                raise RuntimeError(f"the real archive lacks {len(missing)} sentence vectors of {row['url']}")
            real.update(stored)
            family = family_of(row["url"])
            parts.append(np.stack([np.frombuffer(stored[k], dtype="<f2") for k in keys]).astype(np.float32))
            offset[family], count[family] = n, len(keys)
            n += len(keys)
        return cls(real, np.concatenate(parts), offset, count)


def sample_sentences(store) -> list[str]:
    out = []
    for post in store.iter_posts():
        text = post["text"]
        for s, e in split_sentences(text):
            sentence = " ".join(text[s:e].split())
            if len(sentence.split()) >= 6 and sentence[-1] in ".?!":
                out.append(sentence)
    return out


def build_archive(data_dir: Path, gen: Generator, size: int, base: dict[tuple[int, int], np.ndarray],
                  sentences: SentenceBase, settings, echo: Callable[[str], None]) -> dict:
    """Store >= size passages of generated posts (chunked and FTS-indexed), their sentence vectors and their
    vector index."""
    from pbrbot.store import utcnow
    from pbrbot.vectors import VectorIndex, choose_type

    started = time.perf_counter()
    services = bench_services(settings, data_dir)
    model = embedder_name(services.settings)  # the name the vectors are stored under
    store = services.store
    vectors = np.empty((size + 256, next(iter(base.values())).shape[0]), dtype=np.float32)  # a post < 256
    rng = np.random.default_rng(gen.seed)
    last_position: dict[int, int] = {}
    for f, position in base:
        last_position[f] = max(position, last_position.get(f, 0))
    n = k = texts = 0
    now = utcnow()
    last_echo = time.monotonic()
    noise = np.random.default_rng([gen.seed, 1])
    # Sentence vectors are keyed by a hash of their text: staged, and stored in key order at the end.
    with sentence_table.bulk_loader(store, model) as stage:
        while n < size:
            with store.transaction():
                posts: list[dict] = []
                n, k = _store_posts(store, gen, base, last_position, vectors, n, k, size, now, posts)
                texts += _store_sentences(store, stage, sentences, posts, noise)
            if time.monotonic() - last_echo > 10:
                echo(f"  {n:,} of {size:,} passages stored ({texts:,} sentence vectors)")
                last_echo = time.monotonic()
        echo(f"  moving {texts:,} sentence vectors into the store in key order")
    vectors = vectors[:n]
    dim = vectors.shape[1]
    for i in range(len(base), n, 100_000):  # the first posts are the families themselves: real vectors
        part = vectors[i:i + 100_000]
        part += NOISE / np.sqrt(dim) * rng.standard_normal(part.shape, dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    services.store.set_meta(passages.NEXT_ID_KEY, str(n + 1))
    stored_s = time.perf_counter() - started
    kind = choose_type(settings.index_type, n, settings.hnsw_threshold)
    echo(f"  {n:,} passages stored in {stored_s:.0f} s; building the {kind} vector index")
    index = VectorIndex(model, vectors.shape[1], kind)
    for i in range(0, n, 50_000):
        index.add(range(i + 1, min(i + 50_000, n) + 1), vectors[i:i + 50_000])
    index.save(data_dir)
    services.store.set_meta("bench.key", archive_key(gen, size, settings))
    services.close()
    return {"posts": k, "passages": n, "sentence_vectors": texts, "index_type": kind,
            "store_s": round(stored_s, 1), "build_s": round(time.perf_counter() - started, 1)}


def _store_posts(store: Store, gen: Generator, base, last_position, vectors, n: int, k: int, size: int,
                 now: str, stored: list[dict], batch: int = 2000) -> tuple[int, int]:
    """Insert up to `batch` generated posts (appended to `stored`), already chunked, and their passages; fill
    their parents' vectors in order."""
    rows, first = [], len(stored)
    for _ in range(batch):
        post = gen.post(k)
        k += 1
        # laid out in blocks as ingest lays out a text: answers read the stored layout, as on a real archive
        post["text"], spans = layout(text_blocks(post["text"]))
        post["blocks"] = dumps(spans)
        post["content_hash"] = content_hash(post["title"], post["text"], post["date"], None, "",
                                            post["blocks"], "")
        stored.append(post)
        family = post["family"]
        for p in chunk_post(post["id"], post["text"], spans):
            vectors[n] = base[(family, min(p.position, last_position[family]))]
            n += 1
            rows.append((n, p.post_id, p.position, p.start, p.end, p.text, p.hash))
        if n >= size:
            break
    store.insert_posts([{"id": p["id"], "url": p["url"], "title": p["title"], "date": p["date"], "tags": "[]",
                         "text": p["text"], "blocks": p["blocks"], "source": "bench",
                         "content_hash": p["content_hash"],
                         "words": len(p["text"].split()), "first_seen": now, "updated_at": now,
                         "indexed_hash": p["content_hash"]} for p in stored[first:]])
    passages.insert_rows(store, rows)
    return n, k


def _store_sentences(store: Store, stage: Callable[[list[tuple[bytes, bytes]]], None], base: SentenceBase,
                     posts: list[dict], rng: np.random.Generator) -> int:
    """Store the sentence vectors of the generated `posts` and mark them done, as `run_index` would: a
    text a real post has keeps its real vector; any other is its family's j-th text's vector (the last one
    past the end) perturbed like the passage vectors. Returns the texts stored."""
    items: list[tuple[bytes, bytes]] = []
    keys, parents, done = [], [], []
    for post in posts:
        family = post["family"]
        last = base.offset[family] + base.count[family] - 1
        for j, text in enumerate(sentence_texts(PostText.from_row(post))):
            key = text_key(text)
            blob = base.real.get(key)
            if blob is not None:
                items.append((key, blob))
            else:
                keys.append(key)
                parents.append(min(base.offset[family] + j, last))
        done.append((post["id"], post["content_hash"]))
    if keys:
        part = base.stacked[np.asarray(parents)]
        part += NOISE / np.sqrt(part.shape[1]) * rng.standard_normal(part.shape, dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        half = part.astype("<f2")
        items.extend(zip(keys, (v.tobytes() for v in half)))
    stage(items)
    store.mark_sentences_done(done)
    return len(items)


def archive_key(gen: Generator, size: int, settings) -> str:
    return json.dumps([GENERATOR_VERSION, gen.seed, gen.families, size, settings.index_type,
                       settings.hnsw_threshold])


def bench_services(settings, data_dir: Path, embedder=None):
    from pbrbot.config import load_settings
    from pbrbot.services import Services

    return Services(load_settings(**{**settings.model_dump(), "data_dir": data_dir}), embedder=embedder)

"""Posts -> passages -> vectors, incrementally and crash-safely.

1. Posts whose text changed since they were chunked (posts.content_hash != posts.indexed_hash) are
   re-chunked, each in one transaction: passages with an unchanged hash keep their id, the others are
   deleted (the FTS5 triggers keep the keyword index in step) and new ones get fresh ids that are never
   reused. Deleted posts' passages are already gone (Store.delete_post).
2. The set of ids in the saved FAISS index is the truth of what is embedded: passages whose id is not in
   it are embedded, index ids with no passage row are removed.
3. The index is saved atomically (see vectors.py) at checkpoints and at the end. A run killed at any
   moment leaves the previous index loadable, the store consistent, and the next run finishes the job.
4. Posts whose sentences were not embedded for their current text (posts.sentences_hash) get the
   answerer's sentence vectors stored (sentences.py), each batch of vectors in its own transaction and a
   window of posts marked done with its last batch; a killed run keeps the batches stored and leaves the
   rest to the next run (or to the answerer, which embeds what it misses).

Both phases embed a window of texts at a time ordered by length (`_by_length`), one encode call per
batch: a batch costs its longest text times its size, so batches of like lengths waste little on padding.

With settings.sentence_vectors "late" (late chunking; not the default: answers were worse, BENCHMARKS.md)
the two phases are one (`_embed_late`, late.py): the
posts that have passages to embed or sentences to store get all their passages run through the model once,
which gives the passages' vectors and, pooled from the same token states, the sentence vectors; each window
of posts is stored in one transaction and the vector index saved at the same checkpoints. The manifest
records the method (`sentences`); an archive made with the other one is answered as it was made until an
index run remakes its sentence vectors (passage vectors are the same either way and are kept).
"""

from __future__ import annotations

import fcntl
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pbrbot import passages, sentence_table
from pbrbot.config import Settings
from pbrbot.embedding import Embedder, embedder_name, embedding_text
from pbrbot.errors import PbrbotError
from pbrbot.keywords import KeywordIndex
from pbrbot.late import late_vectors, pooled_vectors
from pbrbot.sentences import ALONE, LATE, POOLED, PostText, SentenceVectors, sentence_texts, text_key
from pbrbot.store import Store
from pbrbot.vectors import FORMAT_VERSION, Manifest, VectorIndex, check_compatible, choose_type

log = logging.getLogger(__name__)

CHECKPOINT_PASSAGES = 2000
CHECKPOINT_SECONDS = 60.0
SAVE_SHARE = 0.05  # checkpoints are spaced so saving takes at most this share of the run (large indexes)
EMBED_WINDOW = 2048  # passages read and ordered by length together
SENTENCE_BATCH = 4096  # sentence texts (of whole posts) gathered and ordered by length together
LATE_WINDOW = 128  # late chunking: passages run together (their token states: ~50 MB at 256 tokens each)


@dataclass
class IndexStats:
    embedded: int = 0
    removed: int = 0
    total: int = 0
    seconds: float = 0.0
    rechunked: int = 0  # posts (re)split into passages in this run
    sentences: int = 0  # sentence texts embedded for the answerer in this run
    sentence_seconds: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 2)
        return {k: d[k] for k in ("embedded", "removed", "total", "seconds")}

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


# -- passages ---------------------------------------------------------------------------------
def sync_passages(store: Store) -> int:
    """Re-chunk every post whose text changed since its passages were made. Returns how many posts."""
    stale = passages.stale_posts(store)
    for post_id in stale:
        passages.rechunk(store, post_id)
    KeywordIndex(store).refresh()  # the keyword planner's term counts, when passages changed enough
    return len(stale)


def _passage_texts(store: Store, ids: list[int]) -> list[str]:
    rows = passages.titled_texts(store, ids)
    return [embedding_text(*rows[i]) if i in rows else "" for i in ids]


_PIECE = re.compile(r"\w+|[^\w\s]")


def _by_length(texts: list[str], batch: int) -> list[list[int]]:
    """Positions of `texts` in batches of like length, longest first (what one encode call over all of them
    does, but a batch at a time, so progress, checkpoints and commits keep their pace). Length is counted
    in words and punctuation marks, which follows the model's token count more closely than characters
    (bench archive: 2.6% fewer padded tokens for passages, 6% for sentence texts, than by characters)."""
    pieces = [len(_PIECE.findall(t)) for t in texts]
    order = sorted(range(len(texts)), key=pieces.__getitem__, reverse=True)
    return [order[i:i + batch] for i in range(0, len(order), batch)]


# -- the run ----------------------------------------------------------------------------------
@contextmanager
def _run_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "index.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PbrbotError(f"another `pbrbot index` is running on {data_dir}; "
                              "wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_index(store: Store, embedder: Callable[[], Embedder], settings: Settings, rebuild: bool = False,
              progress: bool = True, checkpoint_passages: int = CHECKPOINT_PASSAGES,
              checkpoint_seconds: float = CHECKPOINT_SECONDS,
              on_saved: Callable[[VectorIndex], None] | None = None) -> IndexStats:
    """Bring the passages and the vector index up to date with the stored posts. `embedder` gives the
    model, loaded only when something is to be embedded; `on_saved` gets the new index at the end (the
    searcher of this process: it searches the new index at once)."""
    started = time.perf_counter()
    data_dir = Path(settings.data_dir)
    stats = IndexStats()
    with _run_lock(data_dir):
        stats.rechunked = sync_passages(store)
        name = embedder_name(settings)
        manifest = None if rebuild else Manifest.read(data_dir)
        if manifest is not None:
            check_compatible(manifest, name, None)
        passage_ids = passages.all_ids(store)
        if manifest is None:
            model = embedder()
            kind = choose_type(settings.index_type, len(passage_ids), settings.hnsw_threshold)
            vectors = VectorIndex(model.name, model.dim, kind)
        else:
            loaded = VectorIndex.load(data_dir, name)
            assert loaded is not None, "the manifest was read above"
            vectors = loaded
        vectors.backend = settings.embed_backend
        method = settings.sentence_vectors
        made = (manifest.sentences or ALONE) if manifest is not None else method
        remake = rebuild or made != method
        if made != method:
            log.warning("the archive's sentence vectors were made %s; remaking them %s", made, method)
        if remake:
            store.forget_sentences_done()
        have = vectors.ids()
        stats.removed = vectors.remove(have - passage_ids)
        to_embed = sorted(passage_ids - have)
        # An index saved in an older format is rewritten in the current one (format 2: 4x less memory).
        dirty = manifest is None or stats.removed > 0 or manifest.format_version != FORMAT_VERSION \
            or made != method
        vectors.sentences = method
        saver = _Saver(vectors, data_dir, checkpoint_passages, checkpoint_seconds)
        t = time.perf_counter()
        if method == LATE:
            if to_embed or store.posts_without_sentences():
                stats.embedded, stats.sentences = _embed_late(store, embedder(), settings, vectors, to_embed,
                                                              saver, progress, remake)
                dirty = True
        elif to_embed:
            stats.embedded = _embed(store, embedder(), settings, vectors, to_embed, saver, progress)
            dirty = True
        kind = choose_type(settings.index_type, len(vectors), settings.hnsw_threshold)
        if kind != vectors.kind and (settings.index_type != "auto" or kind == "hnsw"):
            vectors.convert(kind)  # auto never goes back to flat on its own: only --rebuild does
            dirty = True
        if dirty:
            vectors.save(data_dir)
        stats.total = len(vectors)
        if method != LATE:
            t = time.perf_counter()
            stats.sentences = embed_sentences(store, embedder, settings, remake, progress)
        stats.sentence_seconds = time.perf_counter() - t
    stats.seconds = time.perf_counter() - started
    if on_saved is not None:
        on_saved(vectors)
    log.info("index: %s", stats.as_dict())
    return stats


class _Saver:
    """Checkpoints: the index is saved every `passages` passages or `seconds`, but a save rewrites the whole
    index (seconds at 10^6 passages), so never more than SAVE_SHARE of the time."""

    def __init__(self, vectors: VectorIndex, data_dir: Path, passages: int, seconds: float):
        self.vectors, self.data_dir, self.passages, self.seconds = vectors, data_dir, passages, seconds
        self.since = 0
        self.last, self.cost = time.monotonic(), 0.0

    def added(self, n: int, done: int, total: int) -> None:
        self.since += n
        waited = time.monotonic() - self.last
        if (self.since >= self.passages or waited >= self.seconds) and waited * SAVE_SHARE >= self.cost:
            started = time.monotonic()
            self.vectors.save(self.data_dir)
            log.info("checkpoint: %d of %d passages embedded", done, total)
            self.since, self.last = 0, time.monotonic()
            self.cost = self.last - started


def _check_dim(embedder: Embedder, vectors: VectorIndex) -> None:
    if embedder.dim != vectors.dim:
        raise PbrbotError(f"the index was built with model {vectors.model} (dim {vectors.dim}) but the model "
                          f"gives dim {embedder.dim}; run `pbrbot index --rebuild`")


def _embed(store: Store, embedder: Embedder, settings: Settings, vectors: VectorIndex, ids: list[int],
           saver: _Saver, progress: bool) -> int:
    _check_dim(embedder, vectors)
    batch = max(1, settings.embed_batch_size)
    log.info("embedding %d passages", len(ids))
    done = 0
    bar = tqdm(total=len(ids), unit="passage", desc="embedding", file=sys.stderr, smoothing=0.1,
               disable=not (progress and sys.stderr.isatty()))
    with bar:
        for w in range(0, len(ids), EMBED_WINDOW):
            window = ids[w:w + EMBED_WINDOW]
            texts = _passage_texts(store, window)
            for part in _by_length(texts, batch):
                vectors.add([window[i] for i in part],
                            embedder.encode([texts[i] for i in part], batch_size=batch))
                done += len(part)
                bar.update(len(part))
                saver.added(len(part), done, len(ids))
    return done


def _embed_late(store: Store, embedder: Embedder, settings: Settings, vectors: VectorIndex, ids: list[int],
                saver: _Saver, progress: bool, remake: bool) -> tuple[int, int]:
    """Late chunking: every passage of the posts that have passages to embed (`ids`) or sentence vectors to
    store, run once; the passage vectors of `ids` go into `vectors`, the sentence vectors into the store, a
    window of posts per transaction with the posts marked done. Returns (passages added, sentence texts
    stored). `remake`: afterwards drop the stored sentence vectors no post uses (or of another method)."""
    _check_dim(embedder, vectors)
    batch = max(1, settings.embed_batch_size)
    wanted = set(ids)
    post_ids = sorted(set(passages.post_ids(store, ids).values()) | set(store.posts_without_sentences()))
    spans = passages.spans_by_post(store, post_ids)
    total = sum(len(spans.get(p, ())) for p in post_ids)
    log.info("embedding %d passages of %d posts (%d new), with their sentences", total, len(post_ids),
             len(ids))
    sv = SentenceVectors(store, embedder, LATE)
    live: set[bytes] = set()
    added = stored = 0
    bar = tqdm(total=total, unit="passage", desc="embedding", file=sys.stderr, smoothing=0.1,
               disable=not (progress and sys.stderr.isatty()))

    def flush(posts: list[PostText], hashes: list[str]) -> None:
        nonlocal added, stored
        made = late_vectors(embedder, posts, spans, batch)
        new = [pid for pid in made.passages if pid in wanted]
        if new:
            vectors.add(new, np.stack([made.passages[pid] for pid in new]))
        sv.put_vectors(made.texts, posts_done=[(p.id, h) for p, h in zip(posts, hashes)])
        if remake:
            live.update(text_key(t) for t in made.texts)
        added += len(new)
        stored += len(made.texts)
        bar.update(len(made.passages))
        saver.added(len(new), added, len(ids))

    with bar:
        window: list[PostText] = []
        hashes: list[str] = []
        size = 0
        for post_id in post_ids:
            row = store.get_post(post_id)
            if row is None:
                continue
            window.append(PostText.from_row(row))
            hashes.append(row["content_hash"])
            size += len(spans.get(post_id, ()))
            if size >= LATE_WINDOW:
                flush(window, hashes)
                window, hashes, size = [], [], 0
        if window:
            flush(window, hashes)
    if remake:
        sentence_table.drop_unused(store, sv.name, live)
    return added, stored


# -- the answerer's sentence vectors ---------------------------------------------------------------
def embed_sentences(store: Store, embedder: Callable[[], Embedder], settings: Settings, rebuild: bool = False,
                    progress: bool = True) -> int:
    """Store the sentence vectors of every post whose current text has none yet. Returns texts embedded.

    After the passages so a kill here loses no passage work. With `rebuild`, all posts are walked and the
    stored vectors no post uses any more (or of another model) are dropped at the end."""
    if rebuild:
        store.forget_sentences_done()
    stale = store.posts_without_sentences()
    if not stale:
        return 0
    sv = SentenceVectors(store, embedder(), settings.sentence_vectors)
    batch_size = max(1, settings.embed_batch_size)
    live: set[bytes] = set()
    embedded = 0
    pending: list[tuple[int, str]] = []
    texts: list[str] = []
    posts: list[PostText] = []
    bar = tqdm(total=len(stale), unit="post", desc="sentences", file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))

    def flush():
        """Embed the texts the table lacks, a batch per transaction; the posts are marked with the last.
        (Pooled: the posts' sentences run alone and their contexts pooled, in one transaction.)"""
        nonlocal embedded, texts, pending, posts
        if sv.method == POOLED:
            embedded += len(sv.put_vectors(pooled_vectors(sv.embedder, posts, batch_size), pending))
        else:
            missing = sv.missing(texts)
            parts = _by_length(missing, batch_size) or [[]]
            for n, part in enumerate(parts, start=1):
                embedded += sv.put([missing[i] for i in part], batch_size,
                                   posts_done=pending if n == len(parts) else ())
        bar.update(len(pending))
        texts, pending, posts = [], [], []

    with bar:
        for post_id in stale:
            row = store.get_post(post_id)
            if row is None:
                continue
            posts.append(PostText.from_row(row))
            post_texts = sentence_texts(posts[-1])
            if rebuild:
                live.update(text_key(t) for t in post_texts)
            texts.extend(post_texts)
            pending.append((post_id, row["content_hash"]))
            if len(texts) >= SENTENCE_BATCH:
                flush()
        if pending:
            flush()
    if rebuild:
        sentence_table.drop_unused(store, sv.name, live)
    log.info("sentences: %d texts embedded for %d posts", embedded, len(stale))
    return embedded


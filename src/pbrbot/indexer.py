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

from tqdm import tqdm

from pbrbot import passages
from pbrbot.config import Settings
from pbrbot.embedding import Embedder, embedder_name
from pbrbot.errors import PbrbotError
from pbrbot.keywords import KeywordIndex
from pbrbot.sentences import PostText, SentenceVectors, sentence_texts, text_key
from pbrbot.store import Store
from pbrbot.vectors import FORMAT_VERSION, Manifest, VectorIndex, check_compatible, choose_type

log = logging.getLogger(__name__)

CHECKPOINT_PASSAGES = 2000
CHECKPOINT_SECONDS = 60.0
SAVE_SHARE = 0.05  # checkpoints are spaced so saving takes at most this share of the run (large indexes)
EMBED_WINDOW = 2048  # passages read and ordered by length together
SENTENCE_BATCH = 4096  # sentence texts (of whole posts) gathered and ordered by length together


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


def embedding_text(title: str, text: str) -> str:
    """What is embedded for a passage: the post title gives a passage its topic."""
    return f"{title}\n{text}" if title else text


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
        have = vectors.ids()
        stats.removed = vectors.remove(have - passage_ids)
        to_embed = sorted(passage_ids - have)
        # An index saved in an older format is rewritten in the current one (format 2: 4x less memory).
        dirty = manifest is None or stats.removed > 0 or manifest.format_version != FORMAT_VERSION
        if to_embed:
            stats.embedded = _embed(store, embedder(), settings, vectors, to_embed, data_dir, progress,
                                    checkpoint_passages, checkpoint_seconds)
            dirty = True
        kind = choose_type(settings.index_type, len(vectors), settings.hnsw_threshold)
        if kind != vectors.kind and (settings.index_type != "auto" or kind == "hnsw"):
            vectors.convert(kind)  # auto never goes back to flat on its own: only --rebuild does
            dirty = True
        if dirty:
            vectors.save(data_dir)
        stats.total = len(vectors)
        t = time.perf_counter()
        stats.sentences = embed_sentences(store, embedder, settings, rebuild, progress)
        stats.sentence_seconds = time.perf_counter() - t
    stats.seconds = time.perf_counter() - started
    if on_saved is not None:
        on_saved(vectors)
    log.info("index: %s", stats.as_dict())
    return stats


def _embed(store: Store, embedder: Embedder, settings: Settings, vectors: VectorIndex, ids: list[int],
           data_dir: Path, progress: bool, checkpoint_passages: int, checkpoint_seconds: float) -> int:
    if embedder.dim != vectors.dim:
        raise PbrbotError(f"the index was built with model {vectors.model} (dim {vectors.dim}) but the model "
                          f"gives dim {embedder.dim}; run `pbrbot index --rebuild`")
    batch = max(1, settings.embed_batch_size)
    log.info("embedding %d passages", len(ids))
    done = since_save = 0
    last_save, save_cost = time.monotonic(), 0.0
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
                since_save += len(part)
                bar.update(len(part))
                waited = time.monotonic() - last_save
                # A save rewrites the whole index (seconds at 10^6 passages): never more than SAVE_SHARE of
                # the time.
                if (since_save >= checkpoint_passages or waited >= checkpoint_seconds) and \
                        waited * SAVE_SHARE >= save_cost:
                    started = time.monotonic()
                    vectors.save(data_dir)
                    log.info("checkpoint: %d of %d passages embedded", done, len(ids))
                    since_save, last_save = 0, time.monotonic()
                    save_cost = last_save - started
    return done


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
    sv = SentenceVectors(store, embedder())
    batch_size = max(1, settings.embed_batch_size)
    live: set[bytes] = set()
    embedded = 0
    pending: list[tuple[int, str]] = []
    texts: list[str] = []
    bar = tqdm(total=len(stale), unit="post", desc="sentences", file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))

    def flush():
        """Embed the texts the table lacks, a batch per transaction; the posts are marked with the last."""
        nonlocal embedded, texts, pending
        missing = sv.missing(texts)
        parts = _by_length(missing, batch_size) or [[]]
        for n, part in enumerate(parts, start=1):
            embedded += sv.put([missing[i] for i in part], batch_size,
                               posts_done=pending if n == len(parts) else ())
        bar.update(len(pending))
        texts, pending = [], []

    with bar:
        for post_id in stale:
            row = store.get_post(post_id)
            if row is None:
                continue
            post_texts = sentence_texts(PostText.from_row(row))
            if rebuild:
                live.update(text_key(t) for t in post_texts)
            texts.extend(post_texts)
            pending.append((post_id, row["content_hash"]))
            if len(texts) >= SENTENCE_BATCH:
                flush()
        if pending:
            flush()
    if rebuild:
        store.drop_unused_sentences(sv.embedder.name, live)
    log.info("sentences: %d texts embedded for %d posts", embedded, len(stale))
    return embedded


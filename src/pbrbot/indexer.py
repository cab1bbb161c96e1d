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
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from pbrbot.blocks import stored_spans
from pbrbot.chunking import chunk_post
from pbrbot.embedding import embedder_name
from pbrbot.errors import PbrbotError
from pbrbot.keywords import KeywordIndex
from pbrbot.sentences import PostText, SentenceVectors, sentence_texts, text_key
from pbrbot.vectors import FORMAT_VERSION, Manifest, VectorIndex, check_compatible, choose_type

log = logging.getLogger(__name__)

CHECKPOINT_PASSAGES = 2000
CHECKPOINT_SECONDS = 60.0
SAVE_SHARE = 0.05  # checkpoints are spaced so saving takes at most this share of the run (large indexes)
EMBED_WINDOW = 2048  # passages read and ordered by length together
SENTENCE_BATCH = 4096  # sentence texts (of whole posts) gathered and ordered by length together
NEXT_ID_KEY = "passages.next_id"


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
def sync_passages(store) -> int:
    """Re-chunk every post whose text changed since its passages were made. Returns how many posts."""
    db = store.db
    stale = db.execute(
        "select id from posts where indexed_hash is null or indexed_hash != content_hash order by id"
    ).fetchall()
    for (post_id,) in stale:
        _rechunk(store, post_id)
    KeywordIndex(store).refresh()  # the keyword planner's term counts, when passages changed enough
    return len(stale)


def _rechunk(store, post_id: int) -> None:
    conn = store.db.conn
    with store.transaction():
        row = conn.execute("select text, content_hash, blocks, kind from posts where id = ?",
                           [post_id]).fetchone()
        if row is None:
            return
        text, post_hash, blocks, kind = row
        # A listing page (blocks.is_listing): a passage per teaser, so no passage mixes two posts' teasers.
        passages = chunk_post(post_id, text, stored_spans(text, blocks), teasers=kind == "listing")
        old: dict[str, list[int]] = {}
        for pid, h in conn.execute("select id, hash from passages where post_id = ? order by position",
                                   [post_id]):
            old.setdefault(h, []).append(pid)
        next_id = _next_id(conn)
        for p in passages:
            kept = old.get(p.hash)
            if kept:
                conn.execute('update passages set position = ?, start = ?, "end" = ? where id = ?',
                             [p.position, p.start, p.end, kept.pop(0)])
                continue
            conn.execute('insert into passages (id, post_id, position, start, "end", text, hash) '
                         "values (?, ?, ?, ?, ?, ?, ?)",
                         [next_id, post_id, p.position, p.start, p.end, p.text, p.hash])
            next_id += 1
        gone = [pid for ids in old.values() for pid in ids]
        conn.executemany("delete from passages where id = ?", [(pid,) for pid in gone])
        conn.execute("insert or replace into meta (key, value) values (?, ?)", [NEXT_ID_KEY, str(next_id)])
        conn.execute("update posts set indexed_hash = ? where id = ?", [post_hash, post_id])


def _next_id(conn) -> int:
    """Passage ids are never reused (a reused id would look already embedded)."""
    row = conn.execute("select value from meta where key = ?", [NEXT_ID_KEY]).fetchone()
    stored = int(row[0]) if row and row[0] else 1
    (max_id,) = conn.execute("select coalesce(max(id), 0) from passages").fetchone()
    return max(stored, max_id + 1)


def _passage_texts(db, ids: list[int]) -> list[str]:
    rows: dict[int, str] = {}
    for i in range(0, len(ids), 500):  # one query per 500 ids
        part = ids[i:i + 500]
        rows.update((r[0], embedding_text(r[1], r[2])) for r in db.execute(
            f"select passages.id, posts.title, passages.text from passages join posts on posts.id = "
            f"passages.post_id where passages.id in ({','.join('?' * len(part))})", part))
    return [rows.get(i, "") for i in ids]


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


def run_index(services, rebuild: bool = False, progress: bool = True,
              checkpoint_passages: int = CHECKPOINT_PASSAGES,
              checkpoint_seconds: float = CHECKPOINT_SECONDS) -> IndexStats:
    """Bring the passages and the vector index up to date with the stored posts."""
    started = time.perf_counter()
    settings, store = services.settings, services.store
    data_dir = Path(settings.data_dir)
    stats = IndexStats()
    with _run_lock(data_dir):
        stats.rechunked = sync_passages(store)
        name = embedder_name(settings)
        manifest = None if rebuild else Manifest.read(data_dir)
        if manifest is not None:
            check_compatible(manifest, name, None)
        passage_ids = {r[0] for r in store.db.execute("select id from passages")}
        if manifest is None:
            embedder = services.embedder
            kind = choose_type(settings.index_type, len(passage_ids), settings.hnsw_threshold)
            vectors = VectorIndex(embedder.name, embedder.dim, kind)
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
            stats.embedded = _embed(services, vectors, to_embed, data_dir, progress,
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
        stats.sentences = embed_sentences(services, rebuild, progress)
        stats.sentence_seconds = time.perf_counter() - t
    stats.seconds = time.perf_counter() - started
    searcher = services.__dict__.get("searcher")
    if searcher is not None:
        searcher.use_vectors(vectors)
    log.info("index: %s", stats.as_dict())
    return stats


def _embed(services, vectors: VectorIndex, ids: list[int], data_dir: Path, progress: bool,
           checkpoint_passages: int, checkpoint_seconds: float) -> int:
    embedder = services.embedder
    if embedder.dim != vectors.dim:
        raise PbrbotError(f"the index was built with model {vectors.model} (dim {vectors.dim}) but the model "
                          f"gives dim {embedder.dim}; run `pbrbot index --rebuild`")
    batch = max(1, services.settings.embed_batch_size)
    log.info("embedding %d passages", len(ids))
    done = since_save = 0
    last_save, save_cost = time.monotonic(), 0.0
    bar = tqdm(total=len(ids), unit="passage", desc="embedding", file=sys.stderr, smoothing=0.1,
               disable=not (progress and sys.stderr.isatty()))
    with bar:
        for w in range(0, len(ids), EMBED_WINDOW):
            window = ids[w:w + EMBED_WINDOW]
            texts = _passage_texts(services.store.db, window)
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
def embed_sentences(services, rebuild: bool = False, progress: bool = True) -> int:
    """Store the sentence vectors of every post whose current text has none yet. Returns texts embedded.

    After the passages so a kill here loses no passage work. With `rebuild`, all posts are walked and the
    stored vectors no post uses any more (or of another model) are dropped at the end."""
    store = services.store
    db = store.db
    if rebuild:
        with store.transaction():
            db.execute("update posts set sentences_hash = null")
    stale = [r[0] for r in db.execute("select id from posts where sentences_hash is not content_hash "
                                      "order by id")]
    if not stale:
        return 0
    sv = SentenceVectors(store, services.embedder)
    batch_size = max(1, services.settings.embed_batch_size)
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
            rows = list(db["posts"].rows_where(
                "id = ?", [post_id], select="id, url, title, date, text, content_hash, blocks, kind"))
            if not rows:
                continue
            post_texts = sentence_texts(PostText.from_row(rows[0]))
            if rebuild:
                live.update(text_key(t) for t in post_texts)
            texts.extend(post_texts)
            pending.append((post_id, rows[0]["content_hash"]))
            if len(texts) >= SENTENCE_BATCH:
                flush()
        if pending:
            flush()
    if rebuild:
        _drop_unused_sentences(store, sv.embedder.name, live)
    log.info("sentences: %d texts embedded for %d posts", embedded, len(stale))
    return embedded


def _drop_unused_sentences(store, model: str, live: set[bytes]) -> None:
    """Delete the stored sentence vectors of other models and of texts no post has any more."""
    db = store.db
    with store.transaction():
        db.execute("create temp table if not exists live_sentences (key blob primary key) without rowid")
        db.execute("delete from live_sentences")
        db.conn.executemany("insert or ignore into live_sentences values (?)", [(k,) for k in live])
        db.execute("delete from sentence_vectors where model != ? "
                   "or key not in (select key from live_sentences)", [model])
        db.execute("delete from live_sentences")


def ensure_index(services, echo: Callable[[str], None] = print) -> None:
    """Make a newcomer's first command work: an empty archive gets the sample, an unindexed one an index;
    posts ingested since the last index run are named, with what to run.

    A reading command's archive (services.readonly) is opened for writing only when it can be written; a
    missing one is made only in an existing directory (or the default data directory)."""
    from pbrbot.ingest import ingest_sample
    from pbrbot.store import ArchiveError, ArchiveMissing

    data_dir = Path(services.settings.data_dir)
    db = services.settings.db_path
    if services.readonly:
        if not db.is_file():
            if not data_dir.parent.is_dir() and "data_dir" in services.settings.model_fields_set:
                raise ArchiveMissing(f"there is no archive in {data_dir} and no directory {data_dir.parent} "
                                     "to make one in: check --data-dir (or PBRBOT_DATA_DIR)")
            services.writable()
        elif os.access(db, os.W_OK) and os.access(data_dir, os.W_OK):
            services.writable()
    store = services.store
    where = f" in {data_dir}"
    if store.count_posts() == 0:
        if store.readonly:
            raise ArchiveError(f"the archive{where} is empty and read-only: run `pbrbot ingest` where it can "
                               "be written, or choose another --data-dir")
        echo(f"The archive{where} is empty: loading the sample archive (5 posts) and indexing it…")
        ingest_sample(services)
        run_index(services, progress=False)
    elif (manifest := Manifest.read(data_dir)) is None:
        if store.readonly:
            raise ArchiveError(f"the archive{where} has no search index and is read-only: run `pbrbot index` "
                               "where it can be written")
        echo(f"The archive{where} has no search index yet: indexing it "
             "(run `pbrbot index` after each ingest)…")
        run_index(services, progress=False)
    else:
        missing = not_indexed(store)
        if missing:
            echo(f"{missing} posts are not indexed yet: run `pbrbot index` (answering from the others)")
        elif (unembedded := store.count_passages() - manifest.count) > 0:
            echo(f"{unembedded} passages have no vectors yet (an index run was stopped?): run `pbrbot index` "
                 "(answering from the others)")


def not_indexed(store) -> int:
    """Posts stored since the last index run (or changed since), which searches cannot find yet."""
    return store.db.execute("select count(*) from posts where indexed_hash is null "
                            "or indexed_hash != content_hash").fetchone()[0]

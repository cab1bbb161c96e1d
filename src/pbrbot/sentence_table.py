"""The sentence_vectors table: every query on it.

The answerer's sentence embeddings (sentences.py keeps them behind its memory cache): model name + 16-byte
hash of the text -> float16 vector bytes. schema.py's migration 006 creates the table, as schema.py holds
every table's migrations. Which posts have all their sentence vectors stored is a column of the posts
table (posts.sentences_hash), so that bookkeeping is the Store's (`posts_without_sentences`,
`forget_sentences_done`, `mark_sentences_done`); `put_vectors` marks posts done in the same transaction as
it stores their vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pbrbot.store import Store


def get_vectors(store: Store, model: str, keys: list[bytes]) -> dict[bytes, bytes]:
    """{key: vector bytes} of the stored ones among `keys`."""
    return dict(_rows(store, "key, vector", model, keys))


def stored_keys(store: Store, model: str, keys: list[bytes]) -> set[bytes]:
    """The stored ones among `keys`."""
    return {k for (k,) in _rows(store, "key", model, keys)}


def _rows(store: Store, columns: str, model: str, keys: list[bytes]) -> Iterator[tuple]:
    return store.select_in(f"select {columns} from sentence_vectors where model = ? "
                           "and key in ({marks})", keys, [model])


def put_vectors(store: Store, model: str, items: list[tuple[bytes, bytes]],
                posts_done: Sequence[tuple[int, str]] = ()) -> None:
    """Store (key, vector bytes) pairs and mark posts (id, content_hash) as having all theirs, in one
    transaction."""
    with store.transaction():
        store.db.conn.executemany("insert or replace into sentence_vectors (model, key, vector) "
                                  "values (?, ?, ?)", [(model, k, v) for k, v in items])
        store.mark_sentences_done(posts_done)


@contextmanager
def bulk_loader(store: Store, model: str) -> Iterator[Callable[[Sequence[tuple[bytes, bytes]]], None]]:
    """Bulk loading (the bench's synthetic archives): yields `add(items)`, which stages (key, vector
    bytes) pairs in the calling thread's connection; they are stored in one transaction at the end, in
    key order. Inserted as they come, every transaction would touch pages all over a B-tree of ~10 GB
    at 10^6 passages (measured: 25x write amplification, a build slowing to hours); with the staging
    table and 2 GB of page cache for the load, the writes go in order."""
    db = store.db
    (cache,) = db.execute("PRAGMA cache_size").fetchone()
    db.execute("PRAGMA cache_size = -2000000")
    db.execute("create temp table if not exists stage (key blob not null, vector blob not null)")
    db.execute("delete from temp.stage")

    def add(items: Sequence[tuple[bytes, bytes]]) -> None:
        db.conn.executemany("insert into temp.stage (key, vector) values (?, ?)", items)

    try:
        yield add
        with store.transaction():
            db.execute("insert or replace into sentence_vectors (model, key, vector) "
                       "select ?, key, vector from temp.stage order by key", [model])
    finally:
        db.execute("drop table if exists temp.stage")
        db.execute(f"PRAGMA cache_size = {int(cache)}")


def drop_unused(store: Store, model: str, live: set[bytes]) -> None:
    """Delete the stored sentence vectors of other models and of texts not in `live`."""
    db = store.db
    with store.transaction():
        db.execute("create temp table if not exists live_sentences (key blob primary key) without rowid")
        db.execute("delete from live_sentences")
        db.conn.executemany("insert or ignore into live_sentences values (?)", [(k,) for k in live])
        db.execute("delete from sentence_vectors where model != ? "
                   "or key not in (select key from live_sentences)", [model])
        db.execute("delete from live_sentences")

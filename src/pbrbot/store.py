"""The SQLite store (sqlite-utils): connections, transactions, and the posts and meta tables. The other
tables' queries are their owners' (passages.py, keywords.py, sentence_table.py, alerts.py, feedback.py,
turns.py, ...), which take a Store; every table's schema and its changes are schema.py's migrations, applied
when a writable store opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import sqlite_utils

from pbrbot import passages
from pbrbot.blocks import dumps, stored_spans
from pbrbot.chunking import dumps_sentences
from pbrbot.errors import PbrbotError
from pbrbot.models import Post
from pbrbot.schema import MIGRATIONS

Status = Literal["new", "updated", "unchanged"]


POST_ORDER = "p.date is null, p.date, p.id"  # posts (aliased p) by date, then id; undated ones last
DB_NAME = "pbrbot.db"
IN_BATCH = 500  # ids per `in (...)` query (Store.select_in)


class ArchiveError(PbrbotError):
    """The archive cannot be opened, created or written where it is."""


class ArchiveMissing(ArchiveError):
    """A command that only reads found no archive (and made none)."""


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Connection:
    """One thread's SQLite connection, usable by that thread only (sqlite3's check_same_thread refuses any
    other); closed when the thread ends (its threading.local goes), or by close() in that thread."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.owner = threading.get_ident()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # (from another thread: refused; closed when it is freed)
            self.db.conn.close()

    def __del__(self) -> None:
        self.close()


class Store:
    """One SQLite database file. Safe to open from several processes (WAL) and to share between threads:
    each thread that uses it gets a connection of its own (`db`), opened on first use and never handed to
    another thread, so a transaction is always one thread's and never takes in another's writes."""

    def __init__(self, path: Path | str, readonly: bool = False):
        """`readonly`: open an existing archive for reading only; nothing is created or written (not even
        the WAL setting), so a read-only archive can be read. ArchiveError when it cannot be opened."""
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        self._open: dict[int, weakref.ref[_Connection]] = {}  # every thread's connection, to close them
        self._closed = False
        if not readonly and str(path) != ":memory:":
            _make_dir(self.path.parent)
            _create_private(self.path)
        db = self._connect()
        try:
            if not readonly:
                db.execute("PRAGMA journal_mode=WAL")
            if readonly:
                if MIGRATIONS.pending(db):
                    raise ArchiveError(f"the archive {self.path} was made by an older pbrbot and is opened "
                                       "read-only: run `pbrbot index` once where it can be written, to "
                                       "upgrade it")
            else:
                MIGRATIONS.apply(db)
        except sqlite3.DatabaseError as exc:
            db.conn.close()
            raise self._unreadable(exc) from None
        self._adopt(db)

    def _unreadable(self, exc: Exception) -> ArchiveError:
        what = "read" if self.readonly else "open for writing"
        return ArchiveError(f"cannot {what} the archive {self.path} ({exc}): check that it is a pbrbot "
                            "database and that you may write its directory, or choose another --data-dir "
                            "(or PBRBOT_DATA_DIR)")

    def _connect(self) -> sqlite_utils.Database:
        """A new connection with this store's settings."""
        if self.readonly:
            conn = _connect_readonly(self.path)
        else:
            conn = _connect(self.path, f"cannot create or write the archive {self.path}")
        try:
            if not self.readonly:
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._unreadable(exc) from None
        return sqlite_utils.Database(conn)

    def _adopt(self, db: sqlite_utils.Database) -> _Connection:
        """Make `db` the calling thread's connection."""
        holder = _Connection(db)
        self._local.conn = holder
        key = id(holder)
        self._open[key] = weakref.ref(holder, lambda _: self._open.pop(key, None))
        return holder

    # -- connections: one per thread ------------------------------------------------------------
    @property
    def db(self) -> sqlite_utils.Database:
        """The calling thread's connection (opened on its first use). Never pass it to another thread."""
        holder: _Connection | None = getattr(self._local, "conn", None)
        if holder is None:
            if self._closed:
                raise ArchiveError(f"the archive {self.path} is closed")
            holder = self._adopt(self._connect())
        return holder.db

    def release(self) -> None:
        """Close the calling thread's connection (a thread that is done with the store; the next use
        opens a new one)."""
        holder = getattr(self._local, "conn", None)
        if holder is not None:
            del self._local.conn
            holder.close()

    def close(self) -> None:
        """Close the store: no connection is opened any more (ArchiveError). The calling thread's connection
        closes now; a thread still at work with its own (a poll abandoned at shutdown) finishes with it, and
        it closes when that thread ends or releases it."""
        self._closed = True
        for ref in list(self._open.copy().values()):
            holder = ref()
            if holder is not None:
                holder.close()
        with contextlib.suppress(AttributeError):
            del self._local.conn

    def select_in(self, sql: str, ids: Sequence, params: Sequence = ()) -> Iterator[tuple]:
        """The rows of `sql` for all of `ids`, which fill its `{marks}` (an `in ({marks})` list, after
        `params`): one query per IN_BATCH ids, under SQLite's limit on a statement's parameters."""
        for i in range(0, len(ids), IN_BATCH):
            part = list(ids[i:i + IN_BATCH])
            yield from self.db.execute(sql.format(marks=",".join("?" * len(part))), [*params, *part])

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> None:
        MIGRATIONS.apply(self.db)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction on the calling thread's connection. The connection is in autocommit mode,
        so this is the only way to group writes.

        BEGIN IMMEDIATE takes the write lock at once (waiting up to the busy timeout): under a deferred BEGIN,
        another process writing between our read and our write would fail the write with SQLITE_BUSY
        instead of waiting. Nested use (in the same thread: no other thread can reach this connection) is a
        savepoint inside the outer transaction. Refused on a connection the calling thread does not own
        (ArchiveError here; sqlite3's check_same_thread refuses any other use of it).
        """
        db = self.db
        holder = self._local.conn
        if holder.owner != threading.get_ident() or holder.db is not db:
            raise ArchiveError("a transaction on another thread's SQLite connection")
        conn = db.conn
        if conn.in_transaction:
            with db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str | None) -> None:
        self.set_metas({key: value})

    def set_metas(self, values: dict[str, str | None]) -> None:
        """Several keys in one statement: a reader sees all of them change or none."""
        if values:
            self.db.execute("insert or replace into meta (key, value) values "
                            + ",".join("(?, ?)" for _ in values), [x for kv in values.items() for x in kv])

    def set_meta_once(self, key: str, value: str) -> str:
        """Set `key` unless it is set; returns its value (the first one set, kept for good)."""
        self.db.execute("insert or ignore into meta (key, value) values (?, ?)", [key, value])
        return self.get_meta(key) or value

    def get_metas(self, keys: list[str]) -> dict[str, str | None]:
        """Several keys read at once (None for a missing one): one row, so no write lands halfway through."""
        found = json.loads(self.db.execute(
            f"select json_group_object(key, value) from meta where key in ({','.join('?' * len(keys))})",
            keys).fetchone()[0] or "{}") if keys else {}
        return {key: found.get(key) for key in keys}

    # -- posts' sentence bookkeeping (the vectors themselves: sentence_table.py) --------------
    def posts_without_sentences(self) -> list[int]:
        """Posts whose current text has no sentence vectors stored yet, by id."""
        return [r[0] for r in self.db.execute(
            "select id from posts where sentences_hash is not content_hash order by id")]

    def forget_sentences_done(self) -> None:
        """Every post's sentences to be walked again (a rebuild)."""
        with self.transaction():
            self.db.execute("update posts set sentences_hash = null")

    def mark_sentences_done(self, posts_done: Sequence[tuple[int, str]]) -> None:
        """Record that posts (id, content_hash) have all their sentence vectors stored."""
        self.db.conn.executemany("update posts set sentences_hash = ? where id = ?",
                                 [(h, i) for i, h in posts_done])

    # -- posts ------------------------------------------------------------------------------
    def find_post(self, post: Post) -> dict | None:
        """The stored row that is this post: same URL, else same source id (GUID: a post that moved).
        Never by content alone: two posts with the same text at two URLs are two posts."""
        for column, value in (("url", post.url), ("guid", post.guid)):
            if value is None:
                continue
            rows = list(self.db["posts"].rows_where(f"{column} = ?", [value], limit=1))
            if rows:
                return rows[0]
        return None

    def upsert_post(self, post: Post) -> tuple[Status, int]:
        """Store a post; report whether it was new, updated (content, metadata or URL changed) or
        unchanged."""
        now = utcnow()
        blocks = dumps(post.blocks) if post.blocks else None
        record = {
            "url": post.url, "guid": post.guid, "title": post.title, "date": post.date,
            "modified": post.modified, "author": post.author, "tags": json.dumps(post.tags),
            "text": post.text, "source": post.source, "content_hash": post.hash,
            "words": len(post.text.split()),
            "blocks": blocks,
            "kind": post.kind,
        }
        with self.transaction():
            existing = self.find_post(post)
            if existing is not None and existing["content_hash"] == post.hash and existing["url"] == post.url:
                return "unchanged", existing["id"]
            # split into sentences only when the text is written (a feed's unchanged posts come every poll)
            record["sentences"] = sentences_column(post.text, blocks)
            if existing is None:
                pid = self.db.table("posts").insert({**record, "first_seen": now, "updated_at": now}).last_pk
                return "new", int(pid or 0)
            if existing["url"] != post.url and self.get_post_by_url(post.url) is not None:
                # Another stored post already has this URL: keep both rather than merge them.
                pid = self.db.table("posts").insert({**record, "url": f"{post.url}#{post.hash[:8]}",
                                                     "first_seen": now, "updated_at": now}).last_pk
                return "new", int(pid or 0)
            self.db.table("posts").update(existing["id"], {**record, "updated_at": now})
            return "updated", existing["id"]

    def insert_posts(self, rows: Sequence[dict]) -> None:
        """Store ready-made post rows (columns of the posts table) as they are, ids included: the bench's
        synthetic archives. Each row has the same columns."""
        if rows:
            rows = [{**row, "sentences": sentences_column(row["text"], row.get("blocks"))} for row in rows]
            columns = list(rows[0])
            self.db.conn.executemany(
                f"insert into posts ({', '.join(columns)}) values ({', '.join('?' * len(columns))})",
                [[row[c] for c in columns] for row in rows])

    def post_dates(self) -> list[tuple[int, str]]:
        """(id, date) of every dated post."""
        return self.db.execute("select id, date from posts where date is not null and date != ''").fetchall()

    def get_post(self, post_id: int) -> dict | None:
        # One plain SELECT: 10x faster than sqlite-utils' rows_where, and an answer reads ~20 posts.
        cursor = self.db.conn.execute("select * from posts where id = ?", [post_id])
        row = cursor.fetchone()
        return _post_row(dict(zip((c[0] for c in cursor.description), row))) if row else None

    def get_post_by_url(self, url: str) -> dict | None:
        rows = list(self.db["posts"].rows_where("url = ?", [url], limit=1))
        if not rows and not url.endswith("/"):
            rows = list(self.db["posts"].rows_where("url = ?", [url + "/"], limit=1))
        return _post_row(rows[0]) if rows else None

    def iter_posts(self, order_by: str = "date desc, id desc") -> Iterator[dict]:
        for row in self.db["posts"].rows_where(order_by=order_by):
            yield _post_row(row)

    def max_post_id(self) -> int:
        return int(self.db.execute("select coalesce(max(id), 0) from posts").fetchone()[0])

    def post_ids_dated_since(self, day: str, newest: int = 0) -> list[int]:
        """Ids of the posts dated `day` (YYYY-MM-DD) or later, and of the `newest` latest-dated, in
        POST_ORDER."""
        return [r[0] for r in self.db.execute(
            "select p.id from posts p where p.date >= ? or p.id in (select id from posts "
            f"order by date is null, date desc, id desc limit ?) order by {POST_ORDER}", [day, newest])]

    def posts_after(self, post_id: int) -> list[tuple[int, str | None, str]]:
        """(id, date, title) of the posts stored after `post_id` (ids grow), in POST_ORDER."""
        return self.db.execute(f"select p.id, p.date, p.title from posts p where p.id > ? "
                               f"order by {POST_ORDER}", [post_id]).fetchall()

    def newest_date(self, up_to_id: int) -> str | None:
        """The latest date among the posts with ids up to `up_to_id`."""
        return self.db.execute("select max(date) from posts where id <= ?", [up_to_id]).fetchone()[0]

    def count_posts(self) -> int:
        return self.db["posts"].count

    def count_passages(self) -> int:
        return passages.count(self)

    def delete_post(self, post_id: int) -> None:
        with self.transaction():
            passages.delete_for_post(self, post_id)
            self.db.execute("delete from posts where id = ?", [post_id])


def sentences_column(text: str, blocks: str | None) -> str:
    """The `sentences` value of a post with this text and stored layout (`blocks` column)."""
    return dumps_sentences(text, stored_spans(text, blocks))


def _post_row(row: dict) -> dict:
    row = dict(row)
    row["tags"] = json.loads(row["tags"]) if row.get("tags") else []
    return row


def open_store(data_dir: Path, readonly: bool = False) -> Store:
    return Store(Path(data_dir) / DB_NAME, readonly=readonly)


WRITABLE_DIR = "choose a directory you may write with --data-dir (or PBRBOT_DATA_DIR)"


def _make_dir(path: Path) -> None:
    """The data directory and its parents, or one line saying why not."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise ArchiveError(f"the data directory {path} is a file (or under one), not a directory: choose "
                           "another --data-dir (or PBRBOT_DATA_DIR)") from None
    except OSError as exc:
        raise ArchiveError(f"cannot create the data directory {path} ({exc.strerror}): "
                           f"{WRITABLE_DIR}") from None


def _create_private(path: Path) -> None:
    """A new database file made readable by its owner only (it holds user ids and questions); SQLite's -wal
    and -shm files take its mode."""
    if path.exists():
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        raise ArchiveError(f"cannot create or write the archive {path} ({exc.strerror}): "
                           f"{WRITABLE_DIR}") from None


def _connect(path: Path, failure: str, uri: str | None = None) -> sqlite3.Connection:
    try:
        # check_same_thread: sqlite3 itself refuses any use of a connection from a thread that did not open it
        return sqlite3.connect(uri or str(path), uri=uri is not None, timeout=30, check_same_thread=True,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise ArchiveError(f"{failure} ({exc}): {WRITABLE_DIR}") from None


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """An existing database, read-only. A WAL database whose directory cannot be written (no -shm file can
    be made) is opened immutable: nothing else can be writing it there either."""
    if path.parent.exists() and not path.parent.is_dir():
        raise ArchiveError(f"the data directory {path.parent} is a file, not a directory: choose another "
                           "--data-dir (or PBRBOT_DATA_DIR)")
    if not path.is_file():
        raise ArchiveMissing(f"there is no archive in {path.parent}: run `pbrbot ingest SOURCE` (or "
                             "`pbrbot ingest --sample`) to make one, or name yours with --data-dir "
                             "(or PBRBOT_DATA_DIR)")
    target = quote(str(path.resolve()))
    immutable = not os.access(path.parent, os.W_OK) and not path.with_name(path.name + "-shm").exists()
    conn = _connect(path, f"cannot read the archive {path}",
                    f"file:{target}?{'immutable=1' if immutable else 'mode=ro'}")
    return conn

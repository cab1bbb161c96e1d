"""The passages table: every query on it (its FTS5 index and term counts are keywords.py's).

Passages are a post's chunks (chunking.py), each with its offsets into the post's text and a content hash.
Re-chunking a post keeps the id of every passage whose hash is unchanged and gives new ones fresh ids that
are never reused (the vector index takes an id it holds to be embedded already).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pbrbot.blocks import stored_spans
from pbrbot.chunking import chunk_post
from pbrbot.models import Hit

if TYPE_CHECKING:
    from pbrbot.store import Store

NEXT_ID_KEY = "passages.next_id"


def stale_posts(store: Store) -> list[int]:
    """Posts whose text changed since their passages were made (or that have none yet), by id."""
    return [r[0] for r in store.db.execute(
        "select id from posts where indexed_hash is null or indexed_hash != content_hash order by id")]


def count_stale(store: Store) -> int:
    """How many posts are stale (`stale_posts`): stored since the last index run, or changed since."""
    return int(store.db.execute("select count(*) from posts where indexed_hash is null "
                                "or indexed_hash != content_hash").fetchone()[0])


def rechunk(store: Store, post_id: int) -> None:
    """Split one post into passages again, in one transaction: passages with an unchanged hash keep their
    id, the others are deleted (the FTS5 triggers keep the keyword index in step) and new ones get fresh
    ids; the post is marked indexed for its current text."""
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
        next_id = _next_id(store)
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
        store.set_meta(NEXT_ID_KEY, str(next_id))
        conn.execute("update posts set indexed_hash = ? where id = ?", [post_hash, post_id])


def _next_id(store: Store) -> int:
    """Passage ids are never reused (a reused id would look already embedded)."""
    stored = int(store.get_meta(NEXT_ID_KEY) or 1)
    (max_id,) = store.db.execute("select coalesce(max(id), 0) from passages").fetchone()
    return max(stored, max_id + 1)


def insert_rows(store: Store, rows: Iterable[tuple[int, int, int, int, int, str, str]],
                next_id: int | None = None) -> None:
    """Store ready-made passages (id, post id, position, start, end, text, hash) as they are (the bench's
    synthetic archives); `next_id`: the next fresh id, when the caller knows it."""
    store.db.conn.executemany('insert into passages (id, post_id, position, start, "end", text, hash) '
                              "values (?, ?, ?, ?, ?, ?, ?)", rows)
    if next_id is not None:
        store.set_meta(NEXT_ID_KEY, str(next_id))


def delete_for_post(store: Store, post_id: int) -> None:
    store.db.execute("delete from passages where post_id = ?", [post_id])


def all_ids(store: Store) -> set[int]:
    return {r[0] for r in store.db.execute("select id from passages")}


def count(store: Store) -> int:
    return int(store.db.execute("select count(*) from passages").fetchone()[0])


def fingerprint(store: Store) -> tuple[int, int, int]:
    """(count, largest id, sum of ids): changes whenever passages are added or removed (ids are never
    reused), for caches of what was derived from them."""
    row = store.db.execute("select count(*), coalesce(max(id), 0), coalesce(sum(id), 0) from passages")
    n, top, total = row.fetchone()
    return int(n), int(top), int(total)


def titled_texts(store: Store, ids: list[int]) -> dict[int, tuple[str, str]]:
    """{passage id: (its post's title, its text)} of those of `ids` that exist."""
    return {r[0]: (r[1], r[2]) for r in store.select_in(
        "select passages.id, posts.title, passages.text from passages join posts on posts.id = "
        "passages.post_id where passages.id in ({marks})", ids)}


def spans_by_post(store: Store, post_ids: list[int]) -> dict[int, list[tuple[int, int, int]]]:
    """{post id: its passages' (id, start, end) in the post's text, in order} of those of `post_ids` that
    have passages."""
    out: dict[int, list[tuple[int, int, int]]] = {}
    for post_id, pid, start, end in store.select_in(
            'select post_id, id, start, "end" from passages where post_id in ({marks}) '
            'order by post_id, position', post_ids):  # a post's rows all come in one batch, in order
        out.setdefault(post_id, []).append((pid, start, end))
    return out


def hits(store: Store, ranked: list[tuple[int, float, int | None, int | None, float | None]]) -> list[Hit]:
    """Passage rows joined to a ranking [(passage id, score, dense rank, keyword rank, dense score)], in its
    order; ids with no passage row (deleted since) are dropped."""
    if not ranked:
        return []
    rows = {r[0]: r for r in store.select_in(
        'select p.id, p.post_id, p.start, p."end", p.text, posts.url, posts.title, posts.date '
        "from passages p join posts on posts.id = p.post_id where p.id in ({marks})", [r[0] for r in ranked])}
    out = []
    for pid, score, dense_rank, keyword_rank, dense_score in ranked:
        row = rows.get(pid)
        if row is None:
            continue
        _, post_id, start, end, text, url, title, date = row
        out.append(Hit(passage_id=pid, post_id=post_id, url=url, title=title, date=date, text=text,
                       start=start, end=end, score=score, dense_rank=dense_rank,
                       keyword_rank=keyword_rank, dense_score=dense_score))
    return out


def covering(store: Store, post_id: int, spans: list[tuple[int, int]]) -> list[int]:
    """The ids of the post's passages that overlap any of `spans` (offsets into the post's text), in
    order: the passages a quote came from."""
    if not spans:
        return []
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    rows = store.db.execute('select id, start, "end" from passages where post_id = ? and "end" > ? '
                            "and start < ? order by position", [post_id, start, end]).fetchall()
    return [pid for pid, ps, pe in rows if any(pe > s and ps < e for s, e in spans)]


def post_ids(store: Store, ids: list[int]) -> dict[int, int]:
    """{passage id: its post's id} of those of `ids` that exist."""
    return dict(store.select_in("select id, post_id from passages where id in ({marks})", ids))


def positions(store: Store) -> list[tuple[int, int, str]]:
    """(passage id, position, post URL) of every passage, by id."""
    return store.db.execute("select p.id, p.position, posts.url from passages p "
                            "join posts on posts.id = p.post_id order by p.id").fetchall()

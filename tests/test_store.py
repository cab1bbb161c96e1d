"""The SQLite store: migrations, upserts and how a post is recognised."""

from __future__ import annotations

import pytest

from pbrbot import sentence_table
from pbrbot.models import Post
from pbrbot.store import IN_BATCH, MIGRATIONS, Store


def _post(**kw) -> Post:
    base = dict(url="https://blog.example/a/", title="A", text="Some text about payment by results.",
                date="2013-06-13", guid="wp-1")
    base.update(kw)
    return Post(**base)


def test_migrations_apply_once_and_reopen_cleanly(tmp_path):
    path = tmp_path / "pbrbot.db"
    store = Store(path)
    store.upsert_post(_post())
    store.close()
    again = Store(path)  # re-opening must not re-run migrations or lose data
    applied = [m.name for m in MIGRATIONS.applied(again.db)]
    assert applied == [m.name for m in MIGRATIONS._migrations] and len(applied) == len(set(applied))
    assert MIGRATIONS.pending(again.db) == []
    assert again.count_posts() == 1
    assert again.db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_upsert_reports_new_unchanged_updated(tmp_path):
    store = Store(tmp_path / "db")
    assert store.upsert_post(_post())[0] == "new"
    assert store.upsert_post(_post())[0] == "unchanged"
    status, pid = store.upsert_post(_post(text="Edited text."))
    assert status == "updated"
    assert store.get_post(pid)["text"] == "Edited text."
    assert store.count_posts() == 1


def test_post_whose_url_changes_is_recognised_by_guid_and_never_by_content_alone(tmp_path):
    store = Store(tmp_path / "db")
    _, pid = store.upsert_post(_post())
    status, same = store.upsert_post(_post(url="https://blog.example/a-renamed/"))
    assert (status, same) == ("updated", pid)
    assert store.get_post(pid)["url"] == "https://blog.example/a-renamed/"
    # the same title and text at another URL with another id: another post (a repost), not a move
    status, other = store.upsert_post(_post(url="https://blog.example/a-again/", guid="wp-9"))
    assert status == "new" and other != pid
    assert store.get_post(pid)["url"] == "https://blog.example/a-renamed/"
    assert store.count_posts() == 2


def test_distinct_posts_sharing_a_title_are_kept_apart(tmp_path):
    store = Store(tmp_path / "db")
    store.upsert_post(_post())
    status, _ = store.upsert_post(_post(url="https://blog.example/b/", guid="wp-2", text="Different."))
    assert status == "new"
    assert store.count_posts() == 2


def test_tags_round_trip_and_lookup_tolerates_missing_trailing_slash(tmp_path):
    store = Store(tmp_path / "db")
    store.upsert_post(_post(tags=["PbR", "Probation"]))
    row = store.get_post_by_url("https://blog.example/a")
    assert row is not None and row["tags"] == ["PbR", "Probation"]


def test_a_post_moving_to_a_url_another_post_has_is_kept_apart(tmp_path):
    """A feed entry at A's URL is A (the URL is matched first). But post B (guid wp-2) moving to A's URL
    written without its trailing slash is found by its guid, and merging it into A would lose A: it is
    stored beside A under the URL plus its content hash."""
    store = Store(tmp_path / "db")
    _, a = store.upsert_post(_post())
    _, b = store.upsert_post(_post(url="https://blog.example/b/", guid="wp-2", title="B", text="Other text."))
    moved = _post(url="https://blog.example/a", guid="wp-2", title="B", text="Other text, edited.")
    status, pid = store.upsert_post(moved)
    assert status == "new" and pid not in (a, b)
    assert store.get_post(a)["text"] == "Some text about payment by results."  # A untouched
    assert store.get_post(b)["text"] == "Other text."
    assert store.get_post(pid)["url"] == f"https://blog.example/a#{moved.hash[:8]}"
    store.close()


def test_meta_keys_written_together_are_read_together_across_threads(tmp_path):
    """The watcher records a poll in several keys while /alerts status reads them from another thread on
    the same connection: a reader never sees half a poll."""
    import threading

    store = Store(tmp_path / "db")
    store.set_metas({"t.a": "0", "t.b": "0"})
    assert store.get_metas(["t.a", "t.b", "t.missing"]) == {"t.a": "0", "t.b": "0", "t.missing": None}
    assert store.get_metas([]) == {} and store.set_metas({}) is None
    done, torn = threading.Event(), []

    def write():
        for i in range(1, 3000):
            store.set_metas({"t.a": str(i), "t.b": str(i)})
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        seen = store.get_metas(["t.a", "t.b"])
        if seen["t.a"] != seen["t.b"]:
            torn.append(seen)
    writer.join()
    assert torn == [] and store.get_metas(["t.a", "t.b"]) == {"t.a": "2999", "t.b": "2999"}


def test_the_database_and_index_files_are_created_private(tmp_path):
    """They hold user ids and questions: 0600 in a 0700 directory, whatever the umask (the unit sets 0027)."""
    import os
    import stat

    import numpy as np

    from pbrbot.vectors import VectorIndex

    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        store = Store(data / "pbrbot.db")
        store.upsert_post(_post())
        VectorIndex("m", 4, "flat").save(data)
        vi = VectorIndex("m", 4, "flat")
        vi.add(np.arange(2), np.ones((2, 4), np.float32))
        vi.save(data)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}  # with the WAL open
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {"pbrbot.db", "pbrbot.db-wal", "manifest.json"} <= set(modes)
    assert {name for name, mode in modes.items() if mode != 0o600} <= {"index.lock"}, modes


def test_bulk_sentence_vectors_are_stored_at_the_end_and_read_back_past_one_batch_of_ids(tmp_path):
    store = Store(tmp_path / "pbrbot.db")
    keys = [i.to_bytes(16, "big") for i in range(2 * IN_BATCH + 3)]
    with sentence_table.bulk_loader(store, "m") as add:
        with store.transaction():
            add([(k, b"v" + k) for k in keys[:IN_BATCH + 1]])
        add([(k, b"v" + k) for k in keys[IN_BATCH + 1:]])
        assert sentence_table.get_vectors(store, "m", keys) == {}  # staged only, until the end
    assert sentence_table.get_vectors(store, "m", keys) == {k: b"v" + k for k in keys}
    assert sentence_table.stored_keys(store, "m", keys + [b"x" * 16]) == set(keys)
    with pytest.raises(RuntimeError), sentence_table.bulk_loader(store, "m") as add:
        add([(b"x" * 16, b"y")])
        raise RuntimeError("the load failed")
    assert sentence_table.get_vectors(store, "m", [b"x" * 16]) == {}  # nothing of a failed load is stored
    assert store.db.execute("select count(*) from temp.sqlite_master where name = 'stage'").fetchone()[0] == 0


def test_posts_inserted_as_they_are_keep_their_ids_and_dates(tmp_path):
    store = Store(tmp_path / "pbrbot.db")
    rows = [{"id": i, "url": f"https://bench.invalid/{i}/", "title": f"T{i}", "date": date, "tags": "[]",
             "text": "Some text.", "content_hash": f"h{i}"} for i, date in ((7, "2013-06-13"), (9, None))]
    store.insert_posts(rows)
    assert store.get_post(7)["url"] == "https://bench.invalid/7/" and store.get_post(9)["title"] == "T9"
    assert store.post_dates() == [(7, "2013-06-13")]


def test_a_post_is_split_into_sentences_once_when_stored(tmp_path):
    import json

    from pbrbot.blocks import layout
    from pbrbot.sentences import PostText

    text, blocks = layout([("h", "What is parking?"), ("p", "Parking is neglect. Providers do it quietly."),
                           ("li", "Cream off the easy cases"), ("p", "Dr. Smith said so on 1 Jan. 2013.")])
    store = Store(tmp_path / "db.sqlite")
    pid = store.upsert_post(_post(text=text, blocks=blocks))[1]
    row = store.get_post(pid)
    version, rows = json.loads(row["sentences"])
    stored = PostText.from_row(row)
    split_now = PostText.from_row({**row, "sentences": None})  # a post stored before: split on reading
    assert (stored.spans, stored.paragraphs) == (split_now.spans, split_now.paragraphs)
    assert [stored.sentence(i) for i in range(len(stored.spans))] == [
        "What is parking?", "Parking is neglect.", "Providers do it quietly.", "Cream off the easy cases",
        "Dr. Smith said so on 1 Jan. 2013."]
    assert stored.paragraphs == [0, 1, 1, 2, 3] and len(rows) == 5
    # a layout stored by other splitting rules is split again, never trusted
    other = json.dumps([version + 1, [[0, 4, 0]]])
    assert PostText.from_row({**row, "sentences": other}).spans == split_now.spans
    store.upsert_post(_post(text="A new text. Two sentences."))  # an update stores its new split
    assert PostText.from_row(store.get_post(pid)).spans == [(0, 11), (12, 26)]
    store.close()

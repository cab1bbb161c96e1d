"""Every table's schema, as sqlite-utils migrations: numbered, applied once each in their order when a
writable Store opens, recorded in `_sqlite_migrations`. Append new ones; never edit one that has shipped.

Each table's queries belong to its owner: posts and meta to store.py, passages to passages.py, the keyword
index to keywords.py, sentence_vectors to sentence_table.py, subscriptions and deliveries to alerts.py,
feedback to feedback.py, conversation_turns to turns.py, question_vectors to similar.py, asked and
gap_resolutions to asked.py, curations to curation.py.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("pbrbot")


@MIGRATIONS()
def _m001_posts(db: sqlite_utils.Database) -> None:
    db.table("posts").create(
        {
            "id": int, "url": str, "guid": str, "title": str, "date": str, "modified": str,
            "author": str, "tags": str, "text": str, "source": str, "content_hash": str,
            "words": int, "first_seen": str, "updated_at": str,
            # content_hash of the text the post's passages were made from; differs -> re-index
            "indexed_hash": str,
        },
        pk="id",
        not_null={"url", "title", "text", "content_hash"},
    )
    db.table("posts").create_index(["url"], unique=True)
    db.table("posts").create_index(["guid"])
    db.table("posts").create_index(["content_hash"])
    db.table("posts").create_index(["date"])


@MIGRATIONS()
def _m002_passages(db: sqlite_utils.Database) -> None:
    db.table("passages").create(
        {"id": int, "post_id": int, "position": int, "start": int, "end": int, "text": str, "hash": str},
        pk="id",
        foreign_keys=[("post_id", "posts", "id")],
    )
    db.table("passages").create_index(["post_id", "position"])
    db.table("passages").enable_fts(["text"], tokenize="porter unicode61", create_triggers=True)


@MIGRATIONS()
def _m003_meta(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")


@MIGRATIONS()
def _m004_alerts(db: sqlite_utils.Database) -> None:
    db.table("subscriptions").create(
        {"guild_id": int, "channel_id": int, "role_id": int, "created": str,
         "failures": int, "broken": int, "last_error": str},
        pk="channel_id",
    )
    db.table("deliveries").create(
        {"post_id": int, "channel_id": int, "state": str, "nonce": str, "message_id": int,
         "created": str, "updated": str, "attempts": int, "last_error": str},
        pk=("post_id", "channel_id"),
    )
    db.table("deliveries").create_index(["state"])


@MIGRATIONS()
def _m005_feedback(db: sqlite_utils.Database) -> None:
    db.table("feedback").create(
        {"id": int, "created": str, "user_id": int, "guild_id": int, "question": str,
         "vote": int, "passage_ids": str, "quotes": str},
        pk="id",
    )


@MIGRATIONS()
def _m006_sentence_vectors(db: sqlite_utils.Database) -> None:
    """The answerer's sentence embeddings (see sentences.py): model name + 16-byte hash of the text ->
    float16 vector. WITHOUT ROWID: the primary key is the table, no second copy of the keys."""
    db.execute("create table sentence_vectors (model text not null, key blob not null, vector blob not null, "
               "primary key (model, key)) without rowid")
    # content_hash of the text whose sentence vectors were stored; differs -> embed its sentences
    db.table("posts").add_column("sentences_hash", str)


@MIGRATIONS()
def _m007_keyword_terms(db: sqlite_utils.Database) -> None:
    """How many passages hold each keyword term (FTS5's stems), for planning keyword queries (keywords.py).
    passages_fts_terms reads them off the FTS5 index (a scan); keyword_terms keeps a copy made after index
    runs, so a query looks its words up in O(1)."""
    db.execute("create virtual table passages_fts_terms using fts5vocab(passages_fts, 'row')")
    db.execute("create table keyword_terms (term text primary key, docs integer not null) without rowid")


@MIGRATIONS()
def _m008_post_blocks(db: sqlite_utils.Database) -> None:
    """Each post's block layout (blocks.py: JSON [[kind, start, end], ...] into its text; null for a post
    stored before, whose layout is read off its lines) and its kind: "post" or "listing" (never chunked)."""
    db.table("posts").add_column("blocks", str)
    db.table("posts").add_column("kind", str)


@MIGRATIONS()
def _m010_conversation_turns(db: sqlite_utils.Database) -> None:
    """The last turns of each chat conversation (turns.py owns it): scope is "thread:<id>" or
    "dm:<user id>"; quotes a JSON list of {url, title}."""
    db.table("conversation_turns").create(
        {"id": int, "scope": str, "created": str, "question": str, "taken_as": str, "quotes": str},
        pk="id", not_null={"scope", "question"},
    )
    db.table("conversation_turns").create_index(["scope", "id"])


@MIGRATIONS()
def _m011_moderation(db: sqlite_utils.Database) -> None:
    """The moderators' loop (issue 16). question_vectors: the embedding of a question text (similar.py);
    asked: every question answered for a person, with whether it was found (asked.py: knowledge gaps);
    gap_resolutions: gaps a moderator marked resolved (asked.py); curations: pins and hidden posts
    (curation.py); feedback gains the reason, comment and the quote voted on (feedback.py);
    subscriptions gain where an alert goes (text, forum or thread per article) and a topic filter
    (alerts.py)."""
    db.execute("create table question_vectors (model text not null, key blob not null, vector blob not null, "
               "primary key (model, key)) without rowid")
    db.table("asked").create({"id": int, "created": str, "source": str, "user_id": int, "guild_id": int,
                              "question": str, "found": int, "quotes": str, "explain": str}, pk="id")
    db.table("asked").create_index(["created"])
    db.table("gap_resolutions").create({"id": int, "question": str, "created": str, "created_by": str,
                                        "undone": str, "undone_by": str}, pk="id")
    db.table("curations").create({"id": int, "kind": str, "question": str, "post_id": int, "url": str,
                                  "quote": str, "passage_ids": str, "created": str, "created_by": str,
                                  "undone": str, "undone_by": str}, pk="id")
    db.table("curations").create_index(["kind", "undone"])
    db.table("feedback").add_column("reason", str)
    db.table("feedback").add_column("comment", str)
    # the number (0-based) of the quote voted on; null: all shown
    db.table("feedback").add_column("quote", int)
    db.table("subscriptions").add_column("mode", str)  # "text" (default), "forum", "threads"
    # JSON [[alternative phrases of one topic], ...] or null
    db.table("subscriptions").add_column("topics", str)


@MIGRATIONS()
def _m012_post_sentences(db: sqlite_utils.Database) -> None:
    """Each post's sentence spans (chunking.dumps_sentences), split when the post is stored so an answer
    reads them instead of splitting the post again; null for a post stored before (split on reading)."""
    db.table("posts").add_column("sentences", str)


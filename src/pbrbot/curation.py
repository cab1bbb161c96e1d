"""Moderators' curation: a pinned quote is the canonical answer to a question (and its rephrasings); a hidden
post is left out of answers and alerts. Each is a row of `curations` saying who did it and when; its inverse
(unpin, unhide) marks the row undone, by whom and when, so the history stays.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urldefrag

from pbrbot import passages
from pbrbot.errors import PbrbotError
from pbrbot.fragments import fragment_link
from pbrbot.models import Quote
from pbrbot.questions import normalise
from pbrbot.sentences import PostText
from pbrbot.store import Store, utcnow

PIN, HIDE = "pin", "hide"
# The ids of the hidden posts, as an SQL subquery (alerts.py holds back their deliveries until unhidden).
HIDDEN_POSTS = "select post_id from curations where kind = 'hide' and undone is null"


class CurationError(PbrbotError):
    """A curation that cannot be done as asked (unknown post, quote not in the post, nothing to undo)."""


def hidden_post_ids(store: Store) -> set[int]:
    return {r[0] for r in store.db.execute(HIDDEN_POSTS)}


def hide(store: Store, post: dict, by: str) -> bool:
    """Hide a stored post from answers and alerts; False when it already was."""
    with store.transaction():
        if post["id"] in hidden_post_ids(store):
            return False
        store.db.execute("insert into curations (kind, post_id, url, created, created_by) "
                         "values (?, ?, ?, ?, ?)", [HIDE, post["id"], post["url"], utcnow(), by])
    return True


def unhide(store: Store, post: dict, by: str) -> bool:
    """Show a hidden post again; False when it was not hidden."""
    with store.transaction():
        return store.db.execute("update curations set undone = ?, undone_by = ? where kind = 'hide' and "
                                "undone is null and post_id = ?", [utcnow(), by, post["id"]]).rowcount > 0


def pin(store: Store, question: str, quote: Quote, by: str) -> int:
    """Pin `quote` as the answer to `question` and its rephrasings; returns the pin's id."""
    question = normalise(question)
    if not question:
        raise CurationError("give the question the quote answers")
    post = store.get_post_by_url(urldefrag(quote.url)[0])
    with store.transaction():
        return int(store.db.table("curations").insert({
            "kind": PIN, "question": question, "post_id": post["id"] if post else None, "url": quote.url,
            "quote": quote.model_dump_json(), "passage_ids": json.dumps(quote.passage_ids),
            "created": utcnow(), "created_by": by}).last_pk or 0)


def unpin(store: Store, pin_id: int, by: str) -> bool:
    """Undo a pin (by its id, see `curations`); False when there is no such active pin."""
    with store.transaction():
        return store.db.execute("update curations set undone = ?, undone_by = ? where kind = 'pin' and "
                                "undone is null and id = ?", [utcnow(), by, pin_id]).rowcount > 0


def pins(store: Store) -> list[dict]:
    """The active pins, oldest first, each with its `quote` as a Quote."""
    rows = store.db.execute_returning_dicts("select * from curations where kind = 'pin' and undone is null "
                                            "order by id")
    out = []
    for row in rows:
        quote = Quote.model_validate_json(row["quote"])
        quote.passage_ids = json.loads(row["passage_ids"] or "[]")
        out.append({**row, "quote": quote})
    return out


def curations(store: Store, include_undone: bool = False) -> list[dict]:
    """Pins and hidden posts, newest first: {id, kind, question, url, quote (text), created, created_by,
    undone, undone_by}."""
    where = "" if include_undone else " where undone is null"
    rows = store.db.execute_returning_dicts(f"select * from curations{where} order by id desc")
    return [{"id": r["id"], "kind": r["kind"], "question": r["question"], "url": r["url"],
             "quote": json.loads(r["quote"])["text"] if r["quote"] else None, "created": r["created"],
             "created_by": r["created_by"], "undone": r["undone"], "undone_by": r["undone_by"]} for r in rows]


def excerpt_quote(store: Store, url: str, text: str) -> Quote:
    """A Quote of `text`, which must be a verbatim excerpt of the stored post at `url` (spacing aside):
    a moderator's own answer to a question the archive failed, linked to the spot in the post."""
    post = store.get_post_by_url(urldefrag(url.strip())[0])
    if post is None:
        raise CurationError(f"no stored post has the URL {url}; `pbrbot posts` lists them")
    words = normalise(text).split()
    if not words:
        raise CurationError("give the excerpt to pin (words copied from the post)")
    pattern = r"\s+".join(re.escape(w) for w in words)
    match = re.search(pattern, post["text"])
    if match is None:
        raise CurationError(f"the excerpt is not in {post['url']}: copy it from the post word for word")
    page = PostText.from_row(post)
    segment = normalise(match.group(0))
    link = fragment_link(post["url"], [segment], page.block_texts())
    return Quote(text=segment, url=post["url"], link=link, title=post["title"], date=post["date"], score=1.0,
                 passage_ids=passages.covering(store, post["id"], [(match.start(), match.end())]))

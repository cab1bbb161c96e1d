"""New-article alerts: which posts are new, and exactly-once delivery bookkeeping (no Discord here).

The flow, per target ("discord" for the bot's subscribed channels, "cli" for `pbrbot watch`):

1. `queue_new_posts` finds posts stored since the target's watermark (the highest post id it has
   looked at) and, in ONE transaction, records a pending delivery per (post, channel) and moves the
   watermark. The first run (no watermark yet) announces only the posts dated on or after the day the
   target started watching (`start_watching`, recorded once before its first poll), plus any backfill
   asked for: posts published while the blog or the bot was down at first start are not lost, and the
   back catalogue is not a flood.
   Updated posts keep their id, so they are never new again; a post whose URL changed is matched by
   the store by its GUID and keeps its id too.
2. `deliver_pending` sends what is pending, oldest post first. Before each send the attempt is
   recorded (the intent); after the destination accepts, the delivery is marked sent. A crash
   between the two is resolved on the next run: a delivery that was attempted before is first
   looked up at the destination (`Sender.find_sent`), and the send carries a nonce derived from
   (post, channel) that Discord uses to drop a duplicate (`enforce_nonce`).

A subscription says where its alerts go (`mode`: a message in a text channel, one forum post per article,
or a message with a thread of its own: the Sender makes each exactly once, see chat/alert_sender.py) and may
filter by topic: a post that matches none of its topics is not queued for it (`topic_matches`). Deliveries
of a post a moderator hid (curation.py) stay pending until it is shown again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import signal
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from pbrbot.curation import HIDDEN_POSTS
from pbrbot.store import POST_ORDER, Store, utcnow

log = logging.getLogger(__name__)

DISCORD = "discord"
CLI = "cli"
CLI_CHANNEL = 0  # the pseudo channel of the `pbrbot watch` target
TEXT, FORUM, THREADS = "text", "forum", "threads"  # where a subscription's alerts go: a message in a text
# channel; one forum post per article; a message in a text channel with a thread of its own
MODES = (TEXT, FORUM, THREADS)
BROKEN_AFTER = 3  # consecutive 403/404 answers before a subscription is marked broken
# A "new" post dated this long before the newest post already seen is a bulk import of old posts
# (e.g. someone ingested a WordPress export), not news: recorded as seen, not announced.
OLD_IMPORT_DAYS = 30


# -- storage helpers --------------------------------------------------------------------------------
def _watermark_key(target: str) -> str:
    return f"alerts.watermark.{target}"


def watermark(store: Store, target: str) -> int | None:
    value = store.get_meta(_watermark_key(target))
    return int(value) if value is not None else None


def start_watching(store: Store, target: str) -> str:
    """When `target` started watching (UTC, ISO): recorded by its first poll attempt, then kept for good."""
    return store.set_meta_once(f"alerts.since.{target}", utcnow())


def nonce_for(post_id: int, channel_id: int) -> str:
    """The same (post, channel) always gets the same nonce (Discord allows 25 characters)."""
    return "pbr" + hashlib.sha256(f"{post_id}:{channel_id}".encode()).hexdigest()[:22]


@dataclass
class Delivery:
    post_id: int
    channel_id: int
    state: str
    nonce: str
    attempts: int
    post: dict = field(repr=False, default_factory=dict)
    role_id: int | None = None
    mode: str = TEXT


# -- 1. which posts are new -------------------------------------------------------------------------


def target_channels(store: Store, target: str) -> list[int]:
    """Where a target's alerts go: every subscribed channel (broken ones too: their alerts wait), or the
    CLI's."""
    if target == CLI:
        return [CLI_CHANNEL]
    return [r[0] for r in store.db.execute("select channel_id from subscriptions order by channel_id")]


def queue_new_posts(store: Store, target: str, channel_ids: list[int] | None = None,
                    backfill: int = 0) -> list[int]:
    """Record pending deliveries for the posts that are new since the target's watermark.

    Returns the ids of the posts queued, in announcement order. On the first run for a target the
    watermark is set to the newest post and only the posts dated on or after the day the target started
    watching are queued (with the `backfill` newest posts).
    The channels are the target's at this moment (read in the same transaction) unless given.
    """
    with store.transaction():
        if channel_ids is None:
            channel_ids = target_channels(store, target)
        mark = watermark(store, target)
        top = store.max_post_id()
        if mark is None:
            since = store.get_meta(f"alerts.since.{target}") or "9999"  # never started: nothing is news
            post_ids = store.post_ids_dated_since(since[:10], newest=max(backfill, 0))
            log.info("alerts(%s): first run, announcing %d posts dated since %s; the %d others already in "
                     "the archive are not announced", target, len(post_ids), since[:10],
                     store.count_posts() - len(post_ids))
        else:
            post_ids = _drop_old_imports(store, mark, store.posts_after(mark))
        topics = _channel_topics(store, channel_ids)
        for post_id in post_ids:
            post = store.get_post(post_id) if topics else None
            for channel_id in channel_ids:
                if channel_id in topics and not topic_matches(post, topics[channel_id]):
                    continue  # the subscription's topic filter: not for this channel (seen all the same)
                _insert_delivery(store, post_id, channel_id)
        store.set_meta(_watermark_key(target), str(max(top, mark or 0)))  # (in this transaction)
    return post_ids


def _drop_old_imports(store: Store, mark: int, rows: list[tuple[int, str | None, str]]) -> list[int]:
    newest = store.newest_date(up_to_id=mark)
    cutoff = None
    if newest:
        try:
            cutoff = (date.fromisoformat(newest[:10]) - timedelta(days=OLD_IMPORT_DAYS)).isoformat()
        except ValueError:
            cutoff = None
    kept = []
    for post_id, post_date, title in rows:
        if cutoff and post_date and post_date[:10] < cutoff:
            log.info("alerts: not announcing %r (%s): older than the archive's newest post by %d+ days",
                     title, post_date, OLD_IMPORT_DAYS)
            continue
        kept.append(post_id)
    return kept


def _insert_delivery(store: Store, post_id: int, channel_id: int) -> bool:
    now = utcnow()
    cursor = store.db.execute(
        "insert or ignore into deliveries (post_id, channel_id, state, nonce, created, updated, attempts)"
        " values (?, ?, 'pending', ?, ?, ?, 0)",
        [post_id, channel_id, nonce_for(post_id, channel_id), now, now])
    return cursor.rowcount > 0


def enqueue(store: Store, post_id: int, channel_ids: list[int]) -> list[int]:
    """Queue one stored post by hand (/announce); returns the channels it was not already queued for."""
    with store.transaction():
        return [c for c in channel_ids if _insert_delivery(store, post_id, c)]


# -- 2. delivering ------------------------------------------------------------------------------------
def pending(store: Store, target: str = DISCORD) -> list[Delivery]:
    """The target's pending deliveries to working channels, oldest post first (then by channel)."""
    sql = ("select d.post_id, d.channel_id, d.state, d.nonce, d.attempts, s.role_id, s.mode "
           "from deliveries d join posts p on p.id = d.post_id "
           "left join subscriptions s on s.channel_id = d.channel_id "
           f"where d.state = 'pending' and coalesce(s.broken, 0) = 0 and d.post_id not in ({HIDDEN_POSTS})")
    sql += " and d.channel_id = ?" if target == CLI else " and d.channel_id != ?"
    sql += f" order by {POST_ORDER}, d.channel_id"
    params = [CLI_CHANNEL]
    out = []
    rows = store.db.execute(sql, params).fetchall()
    for post_id, channel_id, state, nonce, attempts, role_id, mode in rows:
        out.append(Delivery(post_id, channel_id, state, nonce, attempts or 0,
                            post=store.get_post(post_id) or {}, role_id=role_id, mode=mode or TEXT))
    return out


def mark_attempt(store: Store, d: Delivery) -> None:
    """The intent: recorded before the send, so a restart knows the message may have gone out."""
    store.db.execute("update deliveries set attempts = attempts + 1, updated = ? "
                     "where post_id = ? and channel_id = ?", [utcnow(), d.post_id, d.channel_id])
    d.attempts += 1


def mark_sent(store: Store, d: Delivery, message_id: int | None) -> None:
    store.db.execute("update deliveries set state = 'sent', message_id = ?, updated = ?, last_error = null "
                     "where post_id = ? and channel_id = ?", [message_id, utcnow(), d.post_id, d.channel_id])


def mark_error(store: Store, d: Delivery, error: str) -> None:
    store.db.execute("update deliveries set last_error = ?, updated = ? where post_id = ? and channel_id = ?",
                     [error, utcnow(), d.post_id, d.channel_id])


def counts(store: Store) -> dict[str, int]:
    return dict(store.db.execute("select state, count(*) from deliveries group by state").fetchall())


class SendError(Exception):
    """A send the destination refused. `permanent` (403 forbidden, 404 unknown channel) counts
    towards marking the subscription broken; anything else is simply retried on the next round."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    async def find_sent(self, d: Delivery) -> int | None:
        """The id of a message already at the destination for this delivery, if any."""

    async def send(self, d: Delivery) -> int | None:
        """Send the alert (carrying d.nonce); return the message id. Raise SendError if refused."""


@dataclass
class DeliveryReport:
    sent: int = 0
    found: int = 0  # already at the destination after a crash: marked sent, not resent
    failed: int = 0
    broken: list[int] = field(default_factory=list)


async def deliver_pending(store: Store, sender: Sender, target: str = DISCORD) -> DeliveryReport:
    """Send every pending delivery once; failures stay pending for the next round. The bookkeeping runs in
    worker threads (`db`), the sends in the caller's event loop."""
    report = DeliveryReport()
    skip: set[int] = set()
    db = asyncio.to_thread
    for d in await db(pending, store, target):
        if d.channel_id in skip:
            continue
        if d.attempts > 0:  # a previous run may have sent it and died before marking it
            found = await sender.find_sent(d)
            if found is not None:
                await db(mark_sent, store, d, found)
                report.found += 1
                continue
        await db(mark_attempt, store, d)
        crash_point("after_intent")
        try:
            message_id = await sender.send(d)
        except SendError as exc:
            report.failed += 1
            await db(mark_error, store, d, str(exc))
            if exc.permanent and await db(record_send_failure, store, d.channel_id, str(exc)):
                report.broken.append(d.channel_id)
            skip.add(d.channel_id)  # keep the channel's order: retry it next round
            continue
        crash_point("after_send")
        await db(_sent, store, d, message_id)
        report.sent += 1
    return report


def _sent(store: Store, d: Delivery, message_id: int | None) -> None:
    mark_sent(store, d, message_id)
    record_send_ok(store, d.channel_id)


_crashes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Fault injection for the crash tests: PBRBOT_TEST_CRASH_AT=after_intent:N (or after_send:N,
    after_ingest:N, after_message:N: a thread-per-article alert sent, its thread not yet started) kills
    this process with SIGKILL the Nth time the point is reached (N defaults to 1)."""
    spec = os.environ.get("PBRBOT_TEST_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _crashes[name] = _crashes.get(name, 0) + 1
    if _crashes[name] >= int(nth or 1):
        log.warning("test fault injection: SIGKILL at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)


# -- subscriptions ------------------------------------------------------------------------------------
def subscribe(store: Store, guild_id: int, channel_id: int, role_id: int | None = None, mode: str = TEXT,
              topics: list[list[str]] | None = None) -> bool:
    """Subscribe a channel (again): returns True if it is new. Re-subscribing repairs a broken one.
    `mode`: TEXT, FORUM (one forum post per article) or THREADS (a thread per article); `topics`: only posts
    that match one of them are announced there (see topic_matches)."""
    if mode not in MODES:
        raise ValueError(f"unknown alert mode {mode!r}")
    existed = store.db.execute("select 1 from subscriptions where channel_id = ?", [channel_id]).fetchone()
    store.db.table("subscriptions").upsert(
        {"guild_id": guild_id, "channel_id": channel_id, "role_id": role_id, "failures": 0, "broken": 0,
         "last_error": None, "mode": mode, "topics": json.dumps(topics) if topics else None,
         **({} if existed else {"created": utcnow()})}, pk="channel_id")
    return existed is None


def _channel_topics(store: Store, channel_ids: list[int]) -> dict[int, list[list[str]]]:
    """The topic filters of those channels that have one."""
    rows = store.db.execute("select channel_id, topics from subscriptions "
                            "where topics is not null").fetchall()
    return {c: json.loads(t) for c, t in rows if c in set(channel_ids) and t}


def topic_matches(post: dict | None, topics: list[list[str]]) -> bool:
    """Whether a post is about one of the topics: each topic is a list of alternative phrases (a glossary
    term's name and aliases, or one word), matched as whole words (or their plural), any case, in the title,
    tags and text."""
    if not post:
        return False
    text = " ".join([post.get("title") or "", " ".join(post.get("tags") or []), post.get("text") or ""])
    return any(re.search(rf"(?<!\w){re.escape(p.strip())}(?:s|es)?(?!\w)", text, re.IGNORECASE)
               for topic in topics for p in topic if p.strip())


def unsubscribe(store: Store, channel_id: int) -> bool:
    with store.transaction():
        gone = store.db.execute("delete from subscriptions where channel_id = ?", [channel_id]).rowcount
        store.db.execute("delete from deliveries where channel_id = ? and state = 'pending'", [channel_id])
    return gone > 0


def subscriptions(store: Store, guild_id: int | None = None, working_only: bool = False) -> list[dict]:
    where, params = [], []
    if guild_id is not None:
        where.append("guild_id = ?")
        params.append(guild_id)
    if working_only:
        where.append("coalesce(broken, 0) = 0")
    sql = ("select * from subscriptions" + (" where " + " and ".join(where) if where else "")
           + " order by created")
    cursor = store.db.execute(sql, params)
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def record_send_failure(store: Store, channel_id: int, error: str) -> bool:
    """Count a 403/404 for this channel; returns True when it just became broken."""
    row = store.db.execute("select failures, broken from subscriptions where channel_id = ?",
                           [channel_id]).fetchone()
    if row is None:
        return False
    failures = (row[0] or 0) + 1
    broken = failures >= BROKEN_AFTER
    store.db.execute("update subscriptions set failures = ?, broken = ?, last_error = ? where channel_id = ?",
                     [failures, int(broken), error, channel_id])
    if broken and not row[1]:
        log.warning("alerts: channel %s marked broken after %d refused sends: %s",
                    channel_id, failures, error)
        return True
    return False


def record_send_ok(store: Store, channel_id: int) -> None:
    store.db.execute("update subscriptions set failures = 0, last_error = null where channel_id = ? "
                     "and failures > 0", [channel_id])


# -- the alert's content (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertCard:
    title: str
    url: str
    date: str | None
    author: str | None
    summary: str
    tags: list[str]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'‘“(])")


def opening_lines(text: str, limit: int = 300) -> str:
    """The post's first sentences, up to about `limit` characters, cut at a sentence end."""
    paragraphs = [p.strip() for p in text.split("\n") if len(p.split()) >= 6]
    first = " ".join(" ".join(paragraphs[:2]).split())
    if len(first) <= limit:
        return first
    out = ""
    for sentence in _SENTENCE_END.split(first):
        if out and len(out) + 1 + len(sentence) > limit:
            break
        out = f"{out} {sentence}".strip()
    if len(out) > limit:
        out = out[: limit - 1].rsplit(" ", 1)[0] + "…"
    return out


def alert_card(post: dict) -> AlertCard:
    return AlertCard(title=post["title"], url=post["url"], date=post.get("date"), author=post.get("author"),
                     summary=opening_lines(post.get("text") or ""), tags=list(post.get("tags") or []))

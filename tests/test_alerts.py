"""Alert bookkeeping on a real SQLite store: what is new, exactly-once delivery, subscriptions."""

from __future__ import annotations

import asyncio

import pytest

from pbrbot import alerts
from pbrbot.models import Post
from pbrbot.store import Store

CH1, CH2 = 111, 222


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "pbrbot.db")
    yield s
    s.close()


def add(store, n, date="2024-05-01", **kw):
    post = Post(url=kw.pop("url", f"https://blog.example/p{n}/"), title=kw.pop("title", f"Post {n}"),
                text=kw.pop("text", f"Body of post {n}. It says something about probation number {n}."),
                date=date, **kw)
    return store.upsert_post(post)[1]


class FakeSender:
    """Records what it sends; can refuse a channel, or 'have' a message already."""

    def __init__(self, refuse=None, already=None):
        self.sent: list[tuple[int, int, str]] = []
        self.refuse = refuse or {}
        self.already = already or {}
        self.lookups = 0

    async def find_sent(self, d):
        self.lookups += 1
        return self.already.get((d.post_id, d.channel_id))

    async def send(self, d):
        if d.channel_id in self.refuse:
            raise alerts.SendError(self.refuse[d.channel_id], permanent=True)
        self.sent.append((d.post_id, d.channel_id, d.nonce))
        return 1000 + len(self.sent)


def deliver(store, sender):
    return asyncio.run(alerts.deliver_pending(store, sender))


def test_first_run_is_silent_then_new_posts_in_date_order(store):
    add(store, 1), add(store, 2)
    assert alerts.queue_new_posts(store, alerts.DISCORD, [CH1]) == []
    assert alerts.queue_new_posts(store, alerts.DISCORD, [CH1]) == []
    later = add(store, 3, date="2024-05-09")
    earlier = add(store, 4, date="2024-05-03")
    assert alerts.queue_new_posts(store, alerts.DISCORD, [CH1, CH2]) == [earlier, later]
    sender = FakeSender()
    report = deliver(store, sender)
    assert report.sent == 4
    assert [(p, c) for p, c, _ in sender.sent] == [(earlier, CH1), (earlier, CH2), (later, CH1), (later, CH2)]
    assert deliver(store, sender).sent == 0  # nothing twice


def test_queue_goes_to_the_channels_subscribed_at_queue_time(store):
    add(store, 1)
    alerts.queue_new_posts(store, alerts.DISCORD)
    alerts.subscribe(store, 1, CH1)
    alerts.subscribe(store, 1, CH2)
    alerts.record_send_failure(store, CH2, "403")  # failing channels still get their alerts queued
    pid = add(store, 2)
    assert alerts.queue_new_posts(store, alerts.DISCORD) == [pid]
    assert {(d.post_id, d.channel_id) for d in alerts.pending(store)} == {(pid, CH1), (pid, CH2)}
    assert alerts.target_channels(store, alerts.CLI) == [alerts.CLI_CHANNEL]


def test_backfill_on_first_run(store):
    ids = [add(store, n, date=f"2024-05-0{n}") for n in range(1, 6)]
    assert alerts.queue_new_posts(store, alerts.CLI, [0], backfill=2) == ids[-2:]


def test_updates_url_changes_and_shared_titles(store):
    pid = add(store, 1, guid="wp-1")
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    # edited text: same URL -> same post
    add(store, 1, guid="wp-1", text="Body of post 1, now edited with a correction about probation.")
    # URL changed, GUID kept -> recognised as the same post
    assert add(store, 1, guid="wp-1", url="https://blog.example/renamed/") == pid
    assert alerts.queue_new_posts(store, alerts.DISCORD, [CH1]) == []
    # two distinct posts sharing a title are both announced
    a = add(store, 7, title="Weekly roundup")
    b = add(store, 8, title="Weekly roundup")
    assert alerts.queue_new_posts(store, alerts.DISCORD, [CH1]) == [a, b]


def test_bulk_import_of_old_posts_is_not_news(store):
    add(store, 1, date="2024-05-01")
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    add(store, 2, date="2019-01-01")
    fresh = add(store, 3, date="2024-05-02")
    assert alerts.queue_new_posts(store, alerts.DISCORD, [CH1]) == [fresh]


def test_crash_after_send_is_found_not_resent(store):
    add(store, 1)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    pid = add(store, 2)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    [d] = alerts.pending(store)
    alerts.mark_attempt(store, d)  # the intent was recorded, then the process died
    sender = FakeSender(already={(pid, CH1): 4242})
    report = deliver(store, sender)
    assert (report.found, report.sent, sender.sent) == (1, 0, [])
    row = store.db.execute("select state, message_id from deliveries").fetchone()
    assert tuple(row) == ("sent", 4242)


def test_crash_after_intent_is_sent_once(store):
    add(store, 1)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    pid = add(store, 2)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    alerts.mark_attempt(store, alerts.pending(store)[0])
    sender = FakeSender()
    assert deliver(store, sender).sent == 1
    assert sender.sent == [(pid, CH1, alerts.nonce_for(pid, CH1))] and sender.lookups == 1
    assert len(alerts.nonce_for(pid, CH1)) <= 25


def test_refused_channel_becomes_broken_and_others_still_get_alerts(store):
    alerts.subscribe(store, 1, CH1)
    alerts.subscribe(store, 1, CH2, role_id=77)
    add(store, 1)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1, CH2])
    add(store, 2)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1, CH2])
    sender = FakeSender(refuse={CH1: "403 Forbidden (error code: 50013): Missing Permissions"})
    for _ in range(alerts.BROKEN_AFTER):
        deliver(store, sender)
    assert [c for _, c, _ in sender.sent] == [CH2]
    [sub1] = [s for s in alerts.subscriptions(store) if s["channel_id"] == CH1]
    assert sub1["broken"] == 1 and "Missing Permissions" in sub1["last_error"]
    assert alerts.pending(store) == []  # the broken channel's alert waits, not lost
    assert alerts.counts(store) == {"pending": 1, "sent": 1}
    alerts.subscribe(store, 1, CH1)  # a moderator fixes the permissions and subscribes again
    assert deliver(store, FakeSender()).sent == 1
    assert [s["channel_id"] for s in alerts.subscriptions(store, guild_id=1, working_only=True)] == [CH1, CH2]


def test_unsubscribe_drops_pending(store):
    alerts.subscribe(store, 1, CH1)
    add(store, 1)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    add(store, 2)
    alerts.queue_new_posts(store, alerts.DISCORD, [CH1])
    assert alerts.unsubscribe(store, CH1) and not alerts.unsubscribe(store, CH1)
    assert alerts.pending(store) == []


def test_enqueue_by_hand_once_per_channel(store):
    pid = add(store, 1)
    assert alerts.enqueue(store, pid, [CH1, CH2]) == [CH1, CH2]
    assert alerts.enqueue(store, pid, [CH1]) == []


@pytest.mark.parametrize("text, expected", [
    ("Short opening line of the post here.\nSecond paragraph is also long enough.",
     "Short opening line of the post here. Second paragraph is also long enough."),
    ("Share\n" + "A sentence that is fairly long and keeps going on. " * 10,
     ("A sentence that is fairly long and keeps going on. " * 5).strip()),
    ("x " * 400, ("x " * 149).strip() + "…"),
])
def test_opening_lines(text, expected):
    assert alerts.opening_lines(text) == expected

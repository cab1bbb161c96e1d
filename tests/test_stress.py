"""Concurrency acceptance tests: the real bot (discord.py against the fake Discord) answering 50 /ask and
/define at once while its watcher ingests and indexes 20 new posts from the fake blog and a moderator runs
/alerts test and /announce; once in-process, once as a `pbrbot run` process SIGKILLed mid-way and
restarted. And: answers computed concurrently are the answers computed one at a time."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_services
from fakeblog import FakeBlog
from fakediscord import FakeDiscord
from test_alerts_e2e import (CH_A, CH_B, GUILD, POLL_MINUTES, _start_bot, alerts_in, command, running_bot,
                             settings_for, until)
from conftest import copy_archive

from pbrbot import alerts, watch
from pbrbot.store import Store

pytestmark = pytest.mark.slow

QUESTIONS = ["What is payment by results?", "How did the Peterborough social impact bond work?",
             "What is justice reinvestment?", "Why do commissioners use payment by results?",
             "What happened to probation under Transforming Rehabilitation?"]
TERMS = ["PbR", "SIB", "TR", "CRC", "NOMS"]
BAD = ("database is locked", "transaction", "recursive", "closed database", "another thread")
NEW_POSTS = 20
USERS = 900000000000001000  # each interaction from its own user: no rate limit in the way


def new_post(blog: FakeBlog, i: int) -> dict:
    """A post published today (news, not an old import: see alerts.OLD_IMPORT_DAYS)."""
    when = (datetime.now(UTC) + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S")
    return blog.add_post(f"Stress post {i}: the quorvex{i} pilot",
                         f"The quorvex{i} pilot tested payment by results for resettlement services in area "
                         f"{i}.\n\nIts evaluation found that outcomes improved for the men it worked with.",
                         date=when)


def ask_or_define(i: int) -> tuple[str, dict]:
    """The i-th interaction: /ask and /define alternately."""
    return ("define", {"term": TERMS[i % len(TERMS)]}) if i % 2 else \
        ("ask", {"question": QUESTIONS[i % len(QUESTIONS)]})


def interactions(fake: FakeDiscord, n: int) -> list:
    """n /ask and /define interactions, each from its own user (coroutines, not started)."""
    return [fake.slash(*ask_or_define(i), user_id=USERS + i) for i in range(n)]


async def answered(fake: FakeDiscord, inter, timeout: float) -> dict:
    """The follow-up (answer) or the ephemeral reply of an interaction."""
    reply = await fake.wait_for(lambda r: r.token == inter.token and (r.is_followup or (
        r.is_callback and r.json.get("type") == 4)), timeout)
    return reply.json


def check_archive(data_dir, posts: list[dict], **parts) -> None:
    """PRAGMA integrity_check is ok, and every new post is stored, indexed and found by a search."""
    with sqlite3.connect(data_dir / "pbrbot.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    svc = make_services(data_dir, **parts)
    try:
        for i, post in enumerate(posts):
            hits = svc.searcher.keyword_search(f"quorvex{i} pilot", 3)
            assert hits and hits[0].url == post["link"], f"new post {i} is not searchable"
    finally:
        svc.close()


def no_sqlite_errors(records) -> None:
    def text(r) -> str:
        trace = logging.Formatter().formatException(r.exc_info) if r.exc_info else ""
        return (r.getMessage() + trace).lower()

    bad = [r for r in records if r.levelno >= logging.WARNING and any(word in text(r) for word in BAD)]
    assert not bad, [r.getMessage() for r in bad]


async def test_fifty_answers_while_the_watcher_indexes_twenty_posts_and_a_moderator_announces(
        tmp_path, sample_services, real_embedder, caplog):
    caplog.set_level(logging.WARNING)
    data_dir = copy_archive(sample_services, tmp_path / "data")
    with FakeBlog() as blog:
        blog.add_posts(3)
        async with FakeDiscord(extra_channel_ids=[CH_A, CH_B]) as fake:
            services = make_services(data_dir, embedder=real_embedder, **settings_for(fake, blog))
            # the bot has polled before (the 3 posts are not news) and two channels are subscribed
            index = lambda: services.run_index(progress=False)  # noqa: E731
            assert watch.poll(services.store, services.settings, index).ok
            for channel in (CH_A, CH_B):
                alerts.subscribe(services.store, GUILD, channel)
            announced = next(services.store.iter_posts(order_by="id"))  # a sample post, for /announce
            async with running_bot(services, fake):
                posts = [new_post(blog, i) for i in range(NEW_POSTS)]  # the next poll finds them
                sent = await asyncio.gather(*interactions(fake, 50))
                moderator = asyncio.gather(
                    command(fake, "alerts test"),
                    command(fake, "announce", [{"name": "url", "type": 3, "value": announced["url"]}]))
                replies = await asyncio.gather(*(answered(fake, inter, 180) for inter in sent))
                test_reply, announce_reply = await moderator
                assert "sent" in test_reply and "Announced" in announce_reply
                # every interaction completed: an answer embed (found or not), none of them the error note
                assert all(r.get("embeds") for r in replies), [r for r in replies if not r.get("embeds")]
                await until(lambda: all(len(alerts_in(fake, c)) == NEW_POSTS + 1 for c in (CH_A, CH_B)),
                            timeout=120, what="every alert")
            services.close()
        for channel in (CH_A, CH_B):  # every alert exactly once, and the announced post once
            links = alerts_in(fake, channel)
            assert sorted(links) == sorted([p["link"] for p in posts] + [announced["url"]])
            assert sum(m["content"].startswith("Test alert") for m in fake.channel_messages(channel)) == 1
    no_sqlite_errors(caplog.records)
    check_archive(data_dir, posts, embedder=real_embedder)
    store = Store(data_dir / "pbrbot.db")
    assert alerts.counts(store) == {"sent": 2 * (NEW_POSTS + 1)}
    store.close()


async def test_the_same_with_the_bot_killed_mid_way_and_restarted(tmp_path):
    """Killed while answering (SIGKILL from outside), then while delivering (after Discord accepted an alert,
    before it was marked sent); the third run answers the users who ask again and finishes the alerts."""
    data_dir = tmp_path / "data"
    with FakeBlog() as blog:
        blog.add_posts(3)
        services = make_services(data_dir, model="fake:64", feed_url=blog.url, http_retries=1,
                                 poll_minutes=POLL_MINUTES)
        from pbrbot.ingest import ingest_sample

        ingest_sample(services.store, services.settings)
        assert watch.poll(services.store, services.settings, lambda: services.run_index(progress=False)).ok
        for channel in (CH_A, CH_B):
            alerts.subscribe(services.store, GUILD, channel)
        announced = next(services.store.iter_posts(order_by="id"))
        services.close()
        async with FakeDiscord(extra_channel_ids=[CH_A, CH_B]) as fake:
            bot = await _start_bot(fake, blog, data_dir)
            await fake.wait_ready(timeout=60)
            posts = [new_post(blog, i) for i in range(NEW_POSTS)]
            sent = await asyncio.gather(*interactions(fake, 50))
            # killed as soon as some answers went out (the watcher is polling, indexing, delivering meanwhile)
            await until(lambda: len(fake.find("POST", "^/webhooks/")) >= 5, timeout=120, what="answers")
            bot.send_signal(signal.SIGKILL)
            assert await bot.wait() == -signal.SIGKILL
            done = {inter.token for inter in sent if any(r.token == inter.token and r.is_followup
                                                          for r in fake.for_interaction(inter))}
            assert len(done) < 50
            sent_before = len(alerts_in(fake, CH_A)) + len(alerts_in(fake, CH_B))
            if sent_before + 7 < 2 * NEW_POSTS:  # (as good as always: the first run was killed early)
                # killed again mid-delivery: by itself, right after Discord accepted its 7th alert
                bot = await _start_bot(fake, blog, data_dir, crash_at="after_send:7")
                assert await asyncio.wait_for(bot.wait(), 120) == -signal.SIGKILL
                assert len(alerts_in(fake, CH_A)) + len(alerts_in(fake, CH_B)) == sent_before + 7
            bot = await _start_bot(fake, blog, data_dir)
            try:
                await fake.wait_ready(timeout=60)
                # the users whose answer never came ask again; the moderator runs the commands
                retry = [i for i, inter in enumerate(sent) if inter.token not in done]
                again = await asyncio.gather(*[fake.slash(*ask_or_define(i), user_id=USERS + 100 + i)
                                               for i in retry])
                test_reply = await command(fake, "alerts test")
                announce_reply = await command(fake, "announce",
                                               [{"name": "url", "type": 3, "value": announced["url"]}])
                assert "sent" in test_reply and "Announced" in announce_reply
                replies = await asyncio.gather(*(answered(fake, inter, 180) for inter in again))
                assert all(r.get("embeds") for r in replies)
                await until(lambda: all(len(alerts_in(fake, c)) == NEW_POSTS + 1 for c in (CH_A, CH_B)),
                            timeout=120, what="every alert")
                store = Store(data_dir / "pbrbot.db")
                await until(lambda: alerts.counts(store).get("pending", 0) == 0, what="no pending delivery")
                assert alerts.counts(store) == {"sent": 2 * (NEW_POSTS + 1)}
                store.close()
            finally:
                bot.send_signal(signal.SIGKILL)
                await bot.wait()
        for channel in (CH_A, CH_B):  # exactly once, across the kill
            assert sorted(alerts_in(fake, channel)) == sorted([p["link"] for p in posts] + [announced["url"]])
    log = (data_dir / "bot.log").read_text(errors="replace").lower()
    assert not [w for w in BAD if w in log], log[-3000:]
    check_archive(data_dir, posts, model="fake:64")


def test_answers_in_parallel_are_the_answers_one_at_a_time(sample_services):
    answerer = sample_services.answerer

    def whole(answer) -> tuple:  # the JSON and the passage ids the quotes carry
        return answer.model_dump(), [q.passage_ids for q in answer.quotes]

    asks = QUESTIONS * 2
    serial = [whole(answerer.ask(q)) for q in asks] + [whole(answerer.define(t)) for t in TERMS]
    assert any(ids for _, ids in serial) and all(all(ids) for _, ids in serial)  # each quote has its passages
    answerer.forget_posts()
    with ThreadPoolExecutor(max_workers=6) as pool:
        asked = pool.map(lambda q: whole(answerer.ask(q)), asks)
        defined = pool.map(lambda t: whole(answerer.define(t)), TERMS)
        parallel = list(asked) + list(defined)
    assert parallel == serial

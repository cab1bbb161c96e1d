"""Hostile input and bad luck through the real discord.py bot and the fake Discord: masked links written in
questions and in post titles and bodies appear as plain text in every message the bot sends; slow, stuck and
trickling polls never hold up /announce or shutdown, and /alerts status shows them."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
import time
from datetime import datetime, timezone

import pytest
from conftest import make_services
from fakeblog import FakeBlog
from fakediscord import FakeDiscord
from hostile import HostileHost
from test_alerts_e2e import (CH_A, CH_B, _bot_env, alerts_in, command, first_poll_done, meta, running_bot,
                             settings_for, subscribe, until)

from pbrbot import alerts
from pbrbot.models import Post
from pbrbot.store import Store

pytestmark = pytest.mark.slow

EVIL = "[Claim free Discord Nitro](https://evil.example/nitro)"
LIVE_EVIL_LINK = re.compile(r"\]\(\s*<?https?://evil\.example")  # `](` touching: Discord would render it


def sent_by_bot(fake: FakeDiscord) -> list[str]:
    """Every message body the bot sent or edited (channel messages, interaction callbacks, follow-ups)."""
    return [json.dumps(r.json, ensure_ascii=False) for r in fake.requests
            if r.method in ("POST", "PATCH") and isinstance(r.json, dict)
            and re.match(r"^/(channels/\d+/messages|interactions/|webhooks/)", r.path)]


async def test_masked_links_in_questions_titles_and_bodies_never_render(tmp_path, real_embedder):
    data_dir = tmp_path / "data"
    with FakeBlog() as blog:
        blog.add_posts(2)
        async with FakeDiscord(extra_channel_ids=[CH_A, CH_B]) as fake:
            services = make_services(data_dir, **settings_for(fake, blog), embedder=real_embedder)
            async with running_bot(services, fake):
                await until(first_poll_done(data_dir), what="the first poll")
                await subscribe(fake, CH_A)
                post = blog.add_post(
                    f"Kestrel mentors {EVIL}",
                    f"The Kestrel scheme pairs every woman leaving HMP Styal with a peer mentor who meets her at "
                    f"the gate. {EVIL} to join the Kestrel mentors.\n\n"
                    "Reoffending among the women mentored fell by a third, the evaluation found.")
                await until(lambda: alerts_in(fake, CH_A), what="the alert")

                async def followup(name, options):
                    inter = await fake.slash(name, options)
                    return await fake.wait_for(lambda r: r.token == inter.token and r.is_followup, timeout=30)

                quoted = await followup("ask", {"question": "How do Kestrel mentors meet women leaving HMP Styal?"})
                echoed = await followup("ask", {"question": f"Who won the 1966 world cup? {EVIL}"})
                searched = await followup("search", {"query": f"Kestrel {EVIL}"})
                await followup("latest", {})
                await subscribe(fake, CH_B)  # /announce queues the post there
                announced = await command(fake, "announce", [{"name": "url", "type": 3, "value": post["link"]}])
            services.close()

    # the hostile text reached the alert, the quote, the echoed question, the search and /announce ...
    alert = json.dumps(fake.channel_messages(CH_A)[-1], ensure_ascii=False)
    for shown in (alert, json.dumps(quoted.json), json.dumps(echoed.json), json.dumps(searched.json), announced):
        assert "Claim free Discord Nitro" in shown
    assert "Claim free Discord Nitro" in json.dumps(quoted.json["embeds"][0]["description"])  # in the quote
    # ... and no message the bot sent renders it as a link, while its own links to the post still work
    messages = sent_by_bot(fake)
    assert len(messages) >= 6
    assert [m for m in messages if LIVE_EVIL_LINK.search(m)] == []
    assert fake.channel_messages(CH_A)[-1]["embeds"][0]["url"] == post["link"]
    assert f"]({post['link']}" in quoted.json["embeds"][0]["description"]


# -- slow and stuck polls ------------------------------------------------------------------------------
def store_posts(data_dir, n: int) -> list[str]:
    """n posts put straight into the archive (for /announce); returns their links."""
    store = Store(data_dir / "pbrbot.db")
    links = [f"https://www.russellwebster.com/stored-{i}/" for i in range(n)]
    for i, link in enumerate(links):
        store.upsert_post(Post(url=link, title=f"Stored {i}", text=f"Stored post number {i} about probation.",
                               date="2013-01-01"))
    store.close()
    return links


async def announce(fake, url: str) -> str:
    return await command(fake, "announce", [{"name": "url", "type": 3, "value": url}])


async def test_announce_answers_during_a_slow_poll_which_is_abandoned_at_the_deadline(tmp_path):
    data_dir = tmp_path / "data"
    with FakeBlog(hang_seconds=30) as blog:
        blog.add_posts(2)
        async with FakeDiscord(extra_channel_ids=[CH_A]) as fake:
            settings = {**settings_for(fake, blog), "http_timeout": 60.0, "poll_deadline": 4.0}
            services = make_services(data_dir, model="fake:64", **settings)
            async with running_bot(services, fake):
                await until(first_poll_done(data_dir), what="the first poll")
                await subscribe(fake, CH_A)
                post = blog.add_post("Announced by hand")
                await until(lambda: alerts_in(fake, CH_A), what="the new post's alert")
                asked = len(blog.requests)
                blog.fail_next("hang")  # the next poll waits 30 s for the blog
                await until(lambda: len(blog.requests) > asked, what="the slow poll")

                started = time.monotonic()
                reply = await announce(fake, post["link"])
                took = time.monotonic() - started
                status = await command(fake, "alerts status")
                assert "already announced" in reply
                print(f"/announce during a slow poll: {took:.2f} s")
                assert took < 5, took  # before: waited for the whole poll
                assert "Polling now: started" in status

                # the poll deadline passes: the poll is reported failed, deliveries go on
                await until(lambda: "abandoned" in (meta(data_dir, "watch.last_error") or ""), what="abandoned")
                status = await command(fake, "alerts status")
                assert "(past the deadline: abandoned)" in status
                assert "Last error:" in status and "PBRBOT_POLL_DEADLINE" in status and "1 failures in a row" in status
            services.close()


async def test_trickling_feed_poll_fails_at_the_fetch_deadline_and_status_says_so(tmp_path):
    data_dir = tmp_path / "data"
    with HostileHost(trickle_interval=2.0) as host, FakeBlog() as blog:
        async with FakeDiscord(extra_channel_ids=[CH_A]) as fake:
            settings = {**settings_for(fake, blog), "feed_url": host.url("/trickle/feed/"), "http_timeout": 3.0,
                        "http_deadline": 5.0, "poll_minutes": 1.0}  # one poll in this test
            services = make_services(data_dir, model="fake:64", **settings)
            async with running_bot(services, fake):
                await until(lambda: meta(data_dir, "watch.polling"), what="the poll to start")
                assert "Polling now: started" in await command(fake, "alerts status")
                await until(lambda: meta(data_dir, "watch.last_error"), timeout=30, what="the failed poll")
                status = await command(fake, "alerts status")
            services.close()
    assert "gave up after 5 s, the limit for one fetch (PBRBOT_HTTP_DEADLINE)" in status
    assert "Last poll: <t:" in status and "1 failures in a row" in status and "Polling now" not in status


def make_due(data_dir) -> bool:
    """Make a poll due at once (the watcher reads it at its next tick); False, so `until` keeps waiting."""
    store = Store(data_dir / "pbrbot.db")
    try:
        if store.get_meta("watch.next_poll") is not None:
            store.set_metas({"watch.next_poll": None, "watch.failures": None})
    finally:
        store.close()
    return False


async def test_twenty_shutdowns_during_polls_and_announces_leave_no_closed_database_error(tmp_path, caplog):
    data_dir = tmp_path / "data"
    links = store_posts(data_dir, 20)
    with HostileHost(trickle_interval=2.0) as host, FakeBlog() as blog:
        async with FakeDiscord(extra_channel_ids=[CH_A]) as fake:
            store = Store(data_dir / "pbrbot.db")
            alerts.subscribe(store, fake.guild_id, CH_A)
            store.close()
            settings = {**settings_for(fake, blog), "feed_url": host.url("/trickle/feed/"), "http_deadline": 8.0,
                        "http_timeout": 3.0}
            for i, link in enumerate(links):
                store = Store(data_dir / "pbrbot.db")
                store.set_metas({"watch.next_poll": None, "watch.failures": None})  # a poll is due at once
                store.close()
                services = make_services(data_dir, model="fake:64", **settings)
                polls = host.requests
                async with running_bot(services, fake, guild_ready_timeout=0.05) as bot:
                    bot.get_cog("Alerts").shutdown_wait = 0.5  # 20 quick shutdowns: the bound is what counts
                    # Earlier rounds' abandoned polls run on in this process (a real process dies with them)
                    # and record their failures when they end, pushing the next poll back: keep it due.
                    await until(lambda: host.requests > polls or make_due(data_dir), timeout=60, what="a poll")
                    # /announce during the poll: deferred, then the bot is shut down under it
                    inter = await fake.slash("announce", {"url": link})
                    await fake.wait_for(lambda r: r.token == inter.token and r.is_callback)
                    await asyncio.sleep(0.02 * (i % 5))
                services.close()
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
                or "closed" in r.getMessage().lower()]
    assert problems == []
    assert len(fake.channel_messages(CH_A)) <= 20


async def test_sigterm_during_an_endless_trickling_poll_exits_promptly(tmp_path):
    """`pbrbot run` as a real process, polling a feed that trickles a byte every 2 s (default 120 s fetch
    deadline): SIGTERM waits for the poll a few seconds at most."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with HostileHost(trickle_interval=2.0) as host, FakeBlog() as blog:
        async with FakeDiscord() as fake:
            env = _bot_env(fake, blog, data_dir, None)
            env["PBRBOT_FEED_URL"] = host.url("/trickle/feed/")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pbrbot", "run", env=env, stdout=asyncio.subprocess.DEVNULL,
                stderr=open(data_dir / "bot.log", "ab"))
            try:
                await until(lambda: host.requests > 0, timeout=120, what="the poll")
                await asyncio.sleep(1.0)
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), 120)
                took = time.monotonic() - started
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    log = (data_dir / "bot.log").read_text()
    print(f"SIGTERM to exit: {took:.1f} s")
    assert code == 0, log
    assert took < 10, (took, log)  # before: until the fetch deadline (64 s seen; unbounded with no deadline)
    assert "closed database" not in log and "Traceback" not in log


async def test_posts_published_while_the_blog_was_down_at_first_start_are_announced_once(tmp_path):
    data_dir = tmp_path / "data"
    with FakeBlog() as blog:
        blog.add_posts(3)  # the back catalogue (2013)
        blog.fail_next(503, times=1000)
        async with FakeDiscord(extra_channel_ids=[CH_A]) as fake:
            services = make_services(data_dir, model="fake:64", **settings_for(fake, blog))
            async with running_bot(services, fake):
                await subscribe(fake, CH_A)
                await until(lambda: int(meta(data_dir, "watch.failures") or 0) >= 1, what="a failed first poll")
                today = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:00:00")
                during = [blog.add_post("Published in the outage", date=today),
                          blog.add_post("Also published in the outage", date=today)]
                blog.clear_faults()
                await until(lambda: len(alerts_in(fake, CH_A)) >= 2, timeout=30, what="the two alerts")
                polls = meta(data_dir, "watch.last_poll")
                await until(lambda: meta(data_dir, "watch.last_poll") != polls, what="one more poll")
                await asyncio.sleep(0.5)
            services.close()
    assert alerts_in(fake, CH_A) == [p["link"] for p in during]


async def test_debug_logs_hold_no_token_and_no_whole_gateway_payload(tmp_path):
    """`pbrbot -v run`: discord.py's debug logs on, an interaction answered; the log keeps no secret."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with FakeBlog() as blog:
        blog.add_posts(2)
        async with FakeDiscord() as fake:
            env = _bot_env(fake, blog, data_dir, None)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pbrbot", "-v", "run", env=env, stdout=asyncio.subprocess.DEVNULL,
                stderr=open(data_dir / "bot.log", "ab"))
            try:
                await fake.wait_ready(timeout=120)
                await until(lambda: fake.commands, timeout=60, what="the commands")
                inter = await fake.slash("about")
                await fake.wait_for(lambda r: r.token == inter.token and r.is_followup, timeout=30)
            finally:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
    log = (data_dir / "bot.log").read_text()
    assert "WebSocket Event" in log and "/callback" in log  # the debug logs were on
    assert fake.token not in log and inter.token not in log
    assert "<redacted>" in log
    gateway = [line for line in log.splitlines() if "WebSocket Event" in line]
    assert max(len(line) for line in gateway) < 600  # cut, not the whole payload (the guild: thousands)

"""New-article alerts end to end: the real discord.py bot against the fake Discord, watching the fake blog.

In-process tests drive /alerts and /announce and watch the alerts arrive; the crash test runs
`pbrbot run` as a real process that is SIGKILLed twice during delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import make_services
from fakeblog import FakeBlog
from fakediscord import FakeDiscord

from pbrbot import alerts, watch
from pbrbot.chat.bot import PbrBot
from pbrbot.chat.moderators import MODERATOR_ONLY
from pbrbot.store import Store

pytestmark = pytest.mark.slow

GUILD = 900000000000000100
CH_A, CH_B, CH_C = 900000000000000201, 900000000000000202, 900000000000000203
ROLE = 900000000000000400
STUDENT = 900000000000000555  # a member without Manage Server
POLL_MINUTES = 0.02  # 1.2 s between polls


# -- helpers ------------------------------------------------------------------------------------------
def settings_for(fake: FakeDiscord, blog: FakeBlog, **extra) -> dict:
    return dict(discord_token=fake.token, discord_api_base=fake.api_base, discord_gateway_url=fake.gateway_url,
                feed_url=blog.url, poll_minutes=POLL_MINUTES, http_retries=1, http_timeout=2.0, **extra)


@contextlib.asynccontextmanager
async def running_bot(services, fake: FakeDiscord, **options):
    bot = PbrBot(services, **options)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_ready(timeout=30)
        await asyncio.wait_for(bot.wait_until_ready(), 30)
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def alerts_in(fake: FakeDiscord, channel_id: int) -> list[str]:
    """The post links of the alert messages in a channel, in order."""
    return [m["embeds"][0]["url"] for m in fake.channel_messages(channel_id)
            if m["embeds"] and not m["content"].startswith("Test alert")]


def resolved_channel(channel_id: int) -> dict:
    return {"id": str(channel_id), "type": 0, "name": f"news-{channel_id % 1000}", "permissions": "2147483647",
            "guild_id": str(GUILD)}


async def command(fake: FakeDiscord, name: str, options: list | None = None, resolved: dict | None = None,
                  user_id: int | None = None) -> str:
    """Run a slash command (a subcommand of /alerts when `name` is 'alerts sub'); return the bot's reply."""
    top, _, sub = name.partition(" ")
    registered = next(c for cmds in fake.commands.values() for c in cmds if c["name"] == top)
    opts = [{"name": sub, "type": 1, "options": options or []}] if sub else options or []
    data = {"id": registered["id"], "name": top, "type": 1, "options": opts, "resolved": resolved or {}}
    if registered.get("guild_id"):
        data["guild_id"] = registered["guild_id"]
    inter = await fake._interaction(2, data, user_id)
    callback = await fake.wait_for(lambda r: r.token == inter.token and r.is_callback)
    if callback.json["type"] == 4:
        assert callback.json["data"].get("flags", 0) & 64, "moderator replies are ephemeral"
        return callback.json["data"]["content"]
    followup = await fake.wait_for(lambda r: r.token == inter.token and r.is_followup, timeout=20)
    return followup.json["content"]


async def subscribe(fake, channel_id, role_id=None):
    options = [{"name": "channel", "type": 7, "value": str(channel_id)}]
    resolved = {"channels": {str(channel_id): resolved_channel(channel_id)}}
    if role_id:
        options.append({"name": "role", "type": 8, "value": str(role_id)})
        resolved["roles"] = {str(role_id): {"id": str(role_id), "name": "news", "permissions": "0", "position": 1,
                                            "color": 0, "hoist": False, "managed": False, "mentionable": True}}
    return await command(fake, "alerts subscribe", options, resolved)


def first_poll_done(data_dir: Path):
    def check():
        store = Store(data_dir / "pbrbot.db")
        try:
            return store.get_meta("watch.last_ok")
        finally:
            store.close()
    return check


def is_broken(data_dir: Path, channel_id: int) -> bool:
    store = Store(data_dir / "pbrbot.db")
    try:
        return any(s["channel_id"] == channel_id and s["broken"] for s in alerts.subscriptions(store))
    finally:
        store.close()


def meta(data_dir: Path, key: str):
    store = Store(data_dir / "pbrbot.db")
    try:
        return store.get_meta(key)
    finally:
        store.close()


# -- in-process: the moderators' feature ---------------------------------------------------------------
async def test_alerts_subscribe_announce_once_failures_and_permissions(tmp_path):
    data_dir = tmp_path / "data"
    with FakeBlog() as blog:
        blog.add_posts(3)
        async with FakeDiscord(extra_channel_ids=[CH_A, CH_B], member_permissions={STUDENT: "0"}) as fake:
            services = make_services(data_dir, model="fake:64", **settings_for(fake, blog))
            async with running_bot(services, fake):
                await until(first_poll_done(data_dir), what="the first poll")
                assert fake.channel_messages(CH_A) == []  # first run: the 3 existing posts are not news

                # moderators only: hidden by default permissions, refused in code
                assert await command(fake, "alerts list", user_id=STUDENT) == MODERATOR_ONLY
                assert await command(fake, "alerts subscribe", [{"name": "channel", "type": 7,
                                     "value": str(CH_A)}], {"channels": {str(CH_A): resolved_channel(CH_A)}},
                                     user_id=STUDENT) == MODERATOR_ONLY
                group = next(c for cmds in fake.commands.values() for c in cmds if c["name"] == "alerts")
                assert int(group["default_member_permissions"]) == 1 << 5  # MANAGE_GUILD

                assert "Subscribed <#%d>" % CH_A in await subscribe(fake, CH_A, ROLE)
                assert "Subscribed" in await subscribe(fake, CH_B)
                listed = await command(fake, "alerts list")
                assert f"<#{CH_A}>, mentions <@&{ROLE}>" in listed and f"<#{CH_B}>" in listed

                # one new post -> one alert per subscribed channel; only the chosen role may be pinged
                post = blog.add_post("Probation caseloads: the new figures", tags=["probation"])
                await until(lambda: alerts_in(fake, CH_A) and alerts_in(fake, CH_B), what="the first alerts")
                [msg_a] = fake.channel_messages(CH_A)
                posted_a = next(r for r in fake.find("POST", f"/channels/{CH_A}/messages"))
                assert msg_a["content"] == f"<@&{ROLE}>"
                assert posted_a.json["allowed_mentions"] == {"parse": [], "roles": [ROLE]}
                assert posted_a.json["enforce_nonce"] is True and posted_a.json["nonce"]
                embed = msg_a["embeds"][0]
                assert embed["url"] == post["link"] and embed["title"] == "Probation caseloads: the new figures"
                assert embed["author"]["name"] == "Russell Webster"
                assert {f["name"]: f["value"] for f in embed["fields"]}["Tags"] == "Payment by results, probation"
                posted_b = next(r for r in fake.find("POST", f"/channels/{CH_B}/messages"))
                assert posted_b.json["allowed_mentions"]["parse"] == [] and not posted_b.json.get("content")
                assert not posted_b.json["allowed_mentions"].get("roles")

                # an edit is not news; two new posts arrive in date order
                polls = meta(data_dir, "watch.last_poll")
                blog.edit_post(post["id"], text="Probation caseloads, corrected figures for 2024.")
                later = blog.add_post("Later one", date="2013-01-03T09:00:00")
                earlier = blog.add_post("Earlier one", date="2013-01-02T09:00:00")
                await until(lambda: len(alerts_in(fake, CH_B)) == 3, what="two more alerts")
                assert meta(data_dir, "watch.last_poll") != polls
                for channel in (CH_A, CH_B):
                    assert alerts_in(fake, channel) == [post["link"], earlier["link"], later["link"]]

                # the feed fails, then recovers: the post published meanwhile is not lost
                blog.fail_next(500, times=1)  # (the backoff's growth is tested in test_watch)
                await until(lambda: int(meta(data_dir, "watch.failures") or 0) >= 1, what="a failed poll")
                status = await command(fake, "alerts status")
                assert "Last error:" in status and "500" in status and "failures in a row" in status
                during = blog.add_post("Published while the feed was down")
                await until(lambda: len(alerts_in(fake, CH_A)) == 4, timeout=30, what="the alert after recovery")
                assert meta(data_dir, "watch.failures") == "0"

                # Discord refuses channel B (403) again and again: B is marked broken, A still served;
                # a 429 on A is retried
                fake.fail("POST", rf"/channels/{CH_B}/messages$", 403, times=alerts.BROKEN_AFTER)
                fake.fail("POST", rf"/channels/{CH_A}/messages$", 429, times=1)
                refused = blog.add_post("Refused in B")
                await until(lambda: is_broken(data_dir, CH_B), timeout=30, what="channel B marked broken")
                assert alerts_in(fake, CH_A)[-1] == refused["link"]
                status = await command(fake, "alerts status")
                assert f"Broken: <#{CH_B}>" in status and "403" in status

                # /announce: only posts already in the archive; nothing is fetched for other URLs
                asked = len(blog.requests)
                reply = await command(fake, "announce", [{"name": "url", "type": 3,
                                                          "value": "https://example.com/not-ours/"}])
                assert "not a post in the archive" in reply and len(blog.requests) == asked
                reply = await command(fake, "announce", [{"name": "url", "type": 3, "value": during["link"]}])
                assert "already announced" in reply

                # /alerts test: a sample alert, no mention, not recorded as a delivery
                assert "sent" in await command(fake, "alerts test")
                test_msg = fake.channel_messages(CH_A)[-1]
                assert test_msg["content"].startswith("Test alert")
                assert "Unsubscribed" in await command(fake, "alerts unsubscribe", [
                    {"name": "channel", "type": 7, "value": str(CH_B)}],
                    {"channels": {str(CH_B): resolved_channel(CH_B)}})
            services.close()
        # exactly once: no post announced twice in a channel
        for channel in (CH_A, CH_B):
            links = alerts_in(fake, channel)
            assert len(links) == len(set(links))


async def test_new_post_can_be_asked_about_as_soon_as_its_alert_is_sent(tmp_path, real_embedder):
    data_dir = tmp_path / "data"
    with FakeBlog() as blog:
        blog.add_posts(2)
        async with FakeDiscord(extra_channel_ids=[CH_A]) as fake:
            services = make_services(data_dir, **settings_for(fake, blog), embedder=real_embedder)
            async with running_bot(services, fake):
                await until(first_poll_done(data_dir), what="the first poll")
                await subscribe(fake, CH_A)
                post = blog.add_post(
                    "The Kestrel scheme: mentoring for women leaving prison",
                    "The Kestrel scheme pairs every woman leaving HMP Styal with a peer mentor who meets "
                    "her at the gate. In its first year the Kestrel mentors supported 140 women.\n\n"
                    "Reoffending among the women mentored fell by a third, the evaluation found.")
                await until(lambda: alerts_in(fake, CH_A), what="the alert")
                inter = await fake.slash("ask", {"question": "What is the Kestrel scheme for women leaving prison?"})
                answer = await fake.wait_for(lambda r: r.token == inter.token and r.is_followup
                                             and r.json.get("embeds"), timeout=30)
                assert post["link"] in str(answer.json["embeds"])
            services.close()


# -- a real process, killed twice during delivery --------------------------------------------------------
def _bot_env(fake: FakeDiscord, blog: FakeBlog, data_dir: Path, crash_at: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBRBOT_")}
    env.update(PBRBOT_DATA_DIR=str(data_dir), PBRBOT_DISCORD_TOKEN=fake.token,
               PBRBOT_DISCORD_API_BASE=fake.api_base, PBRBOT_DISCORD_GATEWAY_URL=fake.gateway_url,
               PBRBOT_FEED_URL=blog.url, PBRBOT_POLL_MINUTES=str(POLL_MINUTES), PBRBOT_MODEL="fake:64",
               PBRBOT_HTTP_RETRIES="1", HF_HUB_OFFLINE="1")
    if crash_at:
        env["PBRBOT_TEST_CRASH_AT"] = crash_at
    return env


async def _start_bot(fake, blog, data_dir, crash_at=None):
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbrbot", "run", env=_bot_env(fake, blog, data_dir, crash_at),
        stdout=asyncio.subprocess.DEVNULL, stderr=open(data_dir / "bot.log", "ab"))


async def test_twenty_posts_three_channels_bot_killed_twice_exactly_sixty_alerts(tmp_path):
    data_dir = tmp_path / "data"
    channels = [CH_A, CH_B, CH_C]
    with FakeBlog() as blog:
        blog.add_posts(3)
        # the archive as the bot left it: the existing posts seen, three channels subscribed
        services = make_services(data_dir, model="fake:64", feed_url=blog.url, http_retries=1,
                                 poll_minutes=POLL_MINUTES)
        assert watch.poll(services.store, services.settings, lambda: services.run_index(progress=False)).ok
        for channel in channels:
            alerts.subscribe(services.store, GUILD, channel)
        services.close()
        new_links = [p["link"] for p in blog.add_posts(20)]

        async with FakeDiscord(extra_channel_ids=channels) as fake:
            # kill 1: SIGKILL between Discord accepting the 7th alert (post 3 -> channel A) and marking it
            # sent. On restart channel A's history can't be read, so only Discord's nonce dedupe (enforce_nonce)
            # stands between the resend and a duplicate.
            fake.fail("GET", rf"/channels/{CH_A}/messages$", 403, times=1)
            first = await _start_bot(fake, blog, data_dir, crash_at="after_send:7")
            assert await asyncio.wait_for(first.wait(), 60) == -signal.SIGKILL
            assert sum(len(fake.channel_messages(c)) for c in channels) == 7
            # kill 2: SIGKILL after recording the intent of this run's 25th send, before sending it
            # (the 1st was the resend answered with the existing message; 23 new ones went out)
            second = await _start_bot(fake, blog, data_dir, crash_at="after_intent:25")
            assert await asyncio.wait_for(second.wait(), 60) == -signal.SIGKILL
            assert sum(len(fake.channel_messages(c)) for c in channels) == 7 + 23
            # third run: finishes the job
            third = await _start_bot(fake, blog, data_dir)
            try:
                await until(lambda: sum(len(fake.channel_messages(c)) for c in channels) >= 60, timeout=60,
                            what="60 alerts")
                store = Store(data_dir / "pbrbot.db")
                await until(lambda: alerts.counts(store).get("pending", 0) == 0, what="no pending delivery")
                await asyncio.sleep(2 * POLL_MINUTES * 60)  # another round: still nothing more
                assert alerts.counts(store) == {"sent": 60}
                store.close()
            finally:
                third.send_signal(signal.SIGKILL)
                await third.wait()
            for channel in channels:
                assert alerts_in(fake, channel) == new_links  # each post once, in date order
            assert sum(len(fake.channel_messages(c)) for c in channels) == 60
            resent = [r for r in fake.find("POST", r"/channels/\d+/messages$")]
            assert len(resent) == 61  # the one resend after kill 1 was answered with the first message

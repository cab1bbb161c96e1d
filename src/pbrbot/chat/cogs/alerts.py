"""The Alerts cog: the watcher loop that polls the blog and delivers new-article alerts, and the
moderators' /alerts commands and /announce.

The bookkeeping lives in pbrbot.alerts and pbrbot.watch, and the Discord side of sending one alert in
chat/alert_sender.py; this cog schedules polls and deliveries and answers the commands, and never touches
SQLite on the event loop's thread: every store call runs in a worker thread (`_db`), each thread with its
own SQLite connection (Store.db). A poll (fetch, store, index) runs in a thread and on a store of its own
(so a poll abandoned at shutdown never finds its connection closed under it); deliveries run
under a lock of their own, so /announce never waits for a poll. A poll still running at
PBRBOT_POLL_DEADLINE is reported failed and no longer waited for; shutdown waits for it at most
SHUTDOWN_WAIT seconds (it is a daemon thread: it never holds the process up) and for a delivery in
progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands, tasks

from pbrbot import alerts, watch
from pbrbot.chat.alert_sender import DiscordSender, alert_embed
from pbrbot.chat.cogs.conversations import GUILD_CONTEXT, GUILD_INSTALLS
from pbrbot.chat.embeds import neutralize
from pbrbot.chat.moderators import PERMISSIONS, check_moderator, command_failed
from pbrbot.chat.moderators import reply as _reply
from pbrbot.curation import hidden_post_ids
from pbrbot.store import Store

if TYPE_CHECKING:
    from pbrbot.chat.bot import PbrBot

log = logging.getLogger("pbrbot.alerts")

T = TypeVar("T")
SHUTDOWN_WAIT = 5.0  # seconds shutdown waits for a running poll, then for a delivery in progress


class Alerts(commands.Cog):
    """Watches the blog and announces each new post once in every subscribed channel."""

    alerts_group = app_commands.Group(
        name="alerts", description="New-post alerts for this server (moderators)",
        allowed_installs=GUILD_INSTALLS, allowed_contexts=GUILD_CONTEXT, default_permissions=PERMISSIONS)

    def __init__(self, bot: PbrBot):
        self.bot = bot
        self.services = bot.services
        self.settings = bot.services.settings
        self.store: Store = bot.services.store  # used from worker threads only (see _db)
        self.sender = DiscordSender(bot, self.store)
        self._delivering = asyncio.Lock()  # one delivery at a time; never held during a poll
        self._poll_thread: threading.Thread | None = None
        self._poll_done = asyncio.Event()
        self._poll_started = 0.0  # time.time() when the running poll started
        self._abandoned = False
        self._closing = False
        self.shutdown_wait = SHUTDOWN_WAIT

    async def cog_load(self) -> None:
        self.watcher.change_interval(seconds=max(0.2, min(self.settings.poll_minutes * 60, 60.0)))
        self.watcher.start()

    async def cog_unload(self) -> None:
        """Stop polling, give a running poll SHUTDOWN_WAIT seconds, let a delivery in progress finish,
        close."""
        self._closing = True
        self.watcher.cancel()
        if self.polling() and not await self._wait_for_poll(self.shutdown_wait):
            log.warning("shutting down with a poll still running (%.0f s old): it is abandoned",
                        time.time() - self._poll_started)
        try:
            async with asyncio.timeout(self.shutdown_wait):
                await self._delivering.acquire()  # held for good: no delivery starts after this
        except TimeoutError:
            log.warning("shutting down during a delivery; it resumes at the next start")

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store call, in a worker thread (never SQLite on the event loop's thread)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- the watcher ------------------------------------------------------------------------
    @tasks.loop(seconds=60)
    async def watcher(self) -> None:
        try:
            await self.run_round()
        except Exception:  # never let the loop die
            log.exception("alerts round failed; trying again at the next tick")

    @watcher.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    async def run_round(self, force_poll: bool = False) -> alerts.DeliveryReport:
        """Poll when due (new posts are stored and indexed, then queued), then deliver what is pending.
        The round waits for its poll up to the poll deadline; a poll still running then is abandoned
        (reported failed) and later rounds deliver without it."""
        if self.polling():
            await self._check_deadline()
        elif self.settings.feed_url and not self._closing and (
                force_poll or await self._db(watch.seconds_until_next_poll, self.store) <= 0):
            self._start_poll()
            await self._wait_for_poll(self.settings.poll_deadline)
            await self._check_deadline()
        return await self.deliver()

    async def deliver(self, before: Callable[[Store], object] | None = None) -> alerts.DeliveryReport:
        """Send what is pending (after `before(store)`, run in a worker thread under the same lock); never
        during shutdown."""
        async with self._delivering:
            if self._closing:
                return alerts.DeliveryReport()
            if before is not None:
                await self._db(before, self.store)
            report = await alerts.deliver_pending(self.store, self.sender)
        if report.sent or report.found or report.failed:
            log.info("alerts: %d sent, %d found already sent, %d failed",
                     report.sent, report.found, report.failed)
        return report

    def polling(self) -> bool:
        return self._poll_thread is not None and self._poll_thread.is_alive()

    def _start_poll(self) -> None:
        loop = asyncio.get_running_loop()
        self._poll_done = done = asyncio.Event()

        def run() -> None:
            try:
                self._poll()
            except Exception:  # watch.poll records its own failures; this is anything else
                log.exception("poll failed")
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                    loop.call_soon_threadsafe(done.set)

        self._poll_started, self._abandoned = time.time(), False
        self._poll_thread = threading.Thread(target=run, name="pbrbot-poll", daemon=True)
        self._poll_thread.start()

    async def _wait_for_poll(self, seconds: float) -> bool:
        """Wait for the running poll at most `seconds`; True if it ended."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poll_done.wait(), max(seconds, 0.0))
        return not self.polling()

    async def _check_deadline(self) -> None:
        if self.polling() and not self._abandoned and \
                time.time() - self._poll_started >= self.settings.poll_deadline:
            self._abandoned = True
            await self._db(watch.record_abandoned, self.store, self.settings, watch.feed_url(self.settings),
                           self._poll_started)

    def _poll(self) -> watch.PollResult:
        """The polling thread: fetch, store, index (this process's searcher gets the new index), queue.
        It opens a store of its own: a poll abandoned at shutdown runs on after the bot's store is closed."""
        store = Store(self.settings.db_path)
        try:
            return watch.poll(store, self.settings,
                              lambda: self.services.run_index(progress=False, store=store),
                              target=alerts.DISCORD)
        finally:
            store.close()

    # -- moderators only --------------------------------------------------------------------
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The command default permissions hide these from members; this check refuses anyone who
        reaches them anyway (servers can override the defaults) who is not a moderator."""
        return check_moderator(interaction, self.settings.moderator_role)

    async def cog_app_command_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await command_failed(interaction, error, log)

    @alerts_group.command(name="subscribe")
    @app_commands.describe(channel="Where new posts are announced (a text or forum channel)",
                           role="A role to mention in each alert",
                           thread_per_article="In a text channel: start a thread on each alert for "
                                              "discussion",
                           topics="Only posts about these (comma-separated glossary terms or words)")
    async def subscribe(self, interaction: discord.Interaction,
                        channel: discord.TextChannel | discord.ForumChannel,
                        role: discord.Role | None = None, thread_per_article: bool = False,
                        topics: str | None = None) -> None:
        """Announce each new blog post in a channel (optionally mentioning a role, in threads, on topics)."""
        forum = isinstance(channel, discord.ForumChannel)
        mode = alerts.FORUM if forum else alerts.THREADS if thread_per_article else alerts.TEXT
        wanted = self.topic_filter(topics)
        assert interaction.guild_id is not None  # a guild-only command
        new = await self._db(alerts.subscribe, self.store, interaction.guild_id, channel.id,
                             role.id if role else None, mode, wanted)
        me = channel.guild.me
        perms = channel.permissions_for(me) if me else None
        need = "Send Messages in Threads" if forum else "Send Messages and Embed Links"
        ok = perms is None or ((perms.send_messages_in_threads or perms.send_messages) if forum
                               else perms.send_messages and perms.embed_links)
        warning = "" if ok else f"\nNote: I can't post there yet; give me {need} in that channel."
        who = f", mentioning {role.mention}" if role else ""
        how = {alerts.FORUM: " as one forum post per article", alerts.THREADS: " with a thread per article",
               alerts.TEXT: ""}[mode]
        about = f" (only posts about {_topics(wanted)})" if wanted else ""
        verb = "Subscribed" if new else "Updated the subscription of"
        await _reply(interaction, f"{verb} {channel.mention}: new posts will be announced "
                                  f"there{how}{who}{about}.{warning}")

    def topic_filter(self, topics: str | None) -> list[list[str]] | None:
        """'PbR, probation' -> [["PbR", "payment by results", ...], ["probation"]]: a glossary term brings its
        name and aliases (alerts.topic_matches matches any); any other word or phrase stands for itself."""
        out = []
        for part in (topics or "").split(","):
            part = " ".join(part.split())
            if not part:
                continue
            term = self.services.glossary.get(part)
            out.append(list(dict.fromkeys([part, *([term.name, *term.aliases] if term else [])])))
        return out or None

    @alerts_group.command(name="unsubscribe")
    @app_commands.describe(channel="The channel to stop announcing in")
    async def unsubscribe(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        """Stop announcing new posts in a channel."""
        gone = await self._db(alerts.unsubscribe, self.store, channel.id)
        await _reply(interaction, f"Unsubscribed {channel.mention}." if gone
                     else f"{channel.mention} was not subscribed.")

    @alerts_group.command(name="list")
    async def list_(self, interaction: discord.Interaction) -> None:
        """The channels of this server that get new-post alerts."""
        subs = await self._db(alerts.subscriptions, self.store, guild_id=interaction.guild_id)
        if not subs:
            await _reply(interaction, "No channel gets alerts yet: use /alerts subscribe.")
            return
        await _reply(interaction, "\n".join(_describe(s) for s in subs))

    @alerts_group.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """Last poll, last error, next poll, and subscriptions that stopped working."""
        st = await self._db(watch.status, self.store)
        lines = [f"Watching: {self.settings.feed_url or 'nothing (set PBRBOT_FEED_URL)'}"]
        if self.polling():
            abandoned = " (past the deadline: abandoned)" if self._abandoned else ""
            lines.append(f"Polling now: started {_when(st['polling'])}{abandoned}")
        elif st["polling"]:
            lines.append(f"Unfinished poll: started {_when(st['polling'])} "
                         "(stopped, or another process polls)")
        lines += [f"Last poll: {_when(st['last_poll'])}; last success: {_when(st['last_ok'])}",
                  f"Next poll: {_when(st['next_poll'])}",
                  f"Last error: {neutralize(st['last_error']) or 'none'}"
                  + (f" ({st['failures']} failures in a row)" if st["failures"] else ""),
                  "Deliveries: " + (", ".join(f"{n} {state}" for state, n in sorted(st["deliveries"].items()))
                                    or "none yet")]
        mine = [s for s in st["broken"] if s["guild_id"] == interaction.guild_id]
        lines += [f"Broken: {_describe(s)}" for s in mine] or ["Broken subscriptions: none"]
        await _reply(interaction, "\n".join(lines))

    @alerts_group.command(name="test")
    async def test(self, interaction: discord.Interaction) -> None:
        """Send a sample alert (the newest post, no mention) to this server's subscribed channels."""
        newest = await self._db(lambda: next(self.store.iter_posts(), None))
        subs = await self._db(alerts.subscriptions, self.store, guild_id=interaction.guild_id)
        if newest is None or not subs:
            await _reply(interaction, "Nothing to test with: the archive is empty." if newest is None
                         else "No channel gets alerts yet: use /alerts subscribe.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        results = []
        for sub in subs:
            channel = self.bot.get_partial_messageable(sub["channel_id"])
            try:
                await channel.send(content="Test alert (this is how new posts will look):",
                                   embed=alert_embed(alerts.alert_card(newest)),
                                   allowed_mentions=discord.AllowedMentions.none())
                results.append(f"<#{sub['channel_id']}>: sent")
            except discord.HTTPException as exc:
                results.append(f"<#{sub['channel_id']}>: failed ({exc.status} {exc.text})")
        await _reply(interaction, "\n".join(results))

    @app_commands.command(name="announce")
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
    @app_commands.default_permissions(manage_guild=True)  # = moderators.PERMISSIONS
    @app_commands.describe(url="The link of a post already in the archive")
    async def announce(self, interaction: discord.Interaction, url: str) -> None:
        """Announce a post from the archive by hand in this server's subscribed channels."""
        post = await self._db(self.store.get_post_by_url, url.strip())
        if post is None:
            await _reply(interaction, "That link is not a post in the archive, so I won't announce it "
                                      "(I only announce posts I have; nothing was fetched).")
            return
        if post["id"] in await self._db(hidden_post_ids, self.store):
            await _reply(interaction, "That post is hidden by a moderator, so I won't announce it: "
                                      "`/curate unhide` it first.")
            return
        subs = await self._db(alerts.subscriptions, self.store, guild_id=interaction.guild_id,
                              working_only=True)
        if not subs:
            await _reply(interaction, "No channel gets alerts yet: use /alerts subscribe first.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        queued = []
        await self.deliver(before=lambda store: queued.extend(
            alerts.enqueue(store, post["id"], [s["channel_id"] for s in subs])))
        where = ", ".join(f"<#{c}>" for c in queued)
        title = discord.utils.escape_markdown(neutralize(post["title"]))
        await _reply(interaction, f"Announced **{title}** in {where}."
                     if queued else "That post was already announced in every subscribed channel.")


def _topics(topics: list[list[str]]) -> str:
    return ", ".join(neutralize(t[0]) for t in topics)


def _describe(sub: dict) -> str:
    role = f", mentions <@&{sub['role_id']}>" if sub.get("role_id") else ""
    mode = {alerts.FORUM: ", forum posts",
            alerts.THREADS: ", a thread per article"}.get(sub.get("mode") or "", "")
    topics = f", only about {_topics(json.loads(sub['topics']))}" if sub.get("topics") else ""
    role += mode + topics
    broken = f" (BROKEN: {neutralize(sub['last_error'])}; fix my permissions, then /alerts subscribe again)" \
        if sub.get("broken") else ""
    return f"<#{sub['channel_id']}>{role}{broken}"


def _when(iso: str | None) -> str:
    if not iso:
        return "never"
    return f"<t:{int(datetime.fromisoformat(iso).timestamp())}:R> ({iso})"


async def setup(bot: PbrBot) -> None:
    await bot.add_cog(Alerts(bot))

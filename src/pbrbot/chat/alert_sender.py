"""Sending one alert to Discord: its embed, its role mention, and `DiscordSender`, the alerts.Sender
that posts it (a message, a message with a thread, or a forum post) and finds one a killed process had
already sent.

No loop and no bookkeeping here: the Alerts cog (chat/cogs/alerts.py) decides when to deliver, and
pbrbot.alerts decides what is pending and records what was sent.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
from discord.ext import commands
from discord.http import handle_message_parameters

from pbrbot import alerts
from pbrbot.chat.embeds import TITLE, fields_embed, neutralize, pretty_date, trim
from pbrbot.store import Store

log = logging.getLogger("pbrbot.alerts")


def alert_embed(card: alerts.AlertCard) -> discord.Embed:
    """The alert: title (linked), date, author, the opening lines, tags; within Discord's limits."""
    fields = {"Published": neutralize(pretty_date(card.date))} if card.date else {}
    if card.tags:
        fields["Tags"] = neutralize(", ".join(card.tags))
    embed = fields_embed(card.title, fields, description=neutralize(card.summary))
    embed.url = card.url
    if card.author:
        embed.set_author(name=trim(neutralize(card.author), TITLE))
    embed.set_footer(text="New on russellwebster.com")
    return embed


def role_mentions(role_id: int | None) -> tuple[str | None, discord.AllowedMentions]:
    """The moderator's chosen role is the only mention ever allowed; without one, nothing pings."""
    if not role_id:
        return None, discord.AllowedMentions.none()
    return f"<@&{role_id}>", discord.AllowedMentions(everyone=False, users=False, replied_user=False,
                                                      roles=[discord.Object(id=role_id)])


THREAD_EXISTS = 160004  # Discord's code for "a thread has already been created for this message"
THREAD_NAME = 100  # Discord's limit on a thread's name


def thread_name(post: dict) -> str:
    return trim(neutralize(post.get("title") or "New post").replace("\n", " "), THREAD_NAME) or "New post"


class DiscordSender:
    """alerts.Sender for Discord, for each kind of subscription:
    - text: a message sent with the delivery's nonce (enforce_nonce: Discord drops a resend); a message a
      killed process had already sent is found by its nonce or post link in the channel's recent history;
    - threads: the same message, then a thread started on it (Discord allows one per message, so a resend
      of the thread is refused with THREAD_EXISTS: done already);
    - forum: one forum post (a thread whose first message is the alert), named by the post; one a killed
      process had already made is found among the server's active threads by its name and first message."""

    def __init__(self, bot: commands.Bot, store: Store):
        self.bot = bot
        self.store = store  # read in worker threads only

    async def find_sent(self, d: alerts.Delivery) -> int | None:
        try:
            if d.mode == alerts.FORUM:
                return await self._find_forum_post(d)
            found = await self._find_message(d)
            if found is not None and d.mode == alerts.THREADS:
                await self._start_thread(d, found)
            return found
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not read channel %s to check for an earlier alert: %s", d.channel_id, exc)
        except alerts.SendError as exc:
            log.warning("could not start the thread of an earlier alert in %s: %s", d.channel_id, exc)
        return None

    async def _find_message(self, d: alerts.Delivery) -> int | None:
        channel = self.bot.get_partial_messageable(d.channel_id)
        async for message in channel.history(limit=50):
            if self.bot.user and message.author.id != self.bot.user.id:
                continue
            if str(message.nonce) == d.nonce or any(e.url == d.post.get("url") for e in message.embeds):
                return message.id
        return None

    async def _find_forum_post(self, d: alerts.Delivery) -> int | None:
        guild_id = await self._guild_id(d.channel_id)
        if guild_id is None:
            return None
        data = await self.bot.http.get_active_threads(guild_id)
        name = thread_name(d.post)
        for thread in data.get("threads", []):
            if int(thread.get("parent_id") or 0) != d.channel_id or thread.get("name") != name:
                continue
            first = await self.bot.http.get_message(int(thread["id"]), int(thread["id"]))
            if any(e.get("url") == d.post.get("url") for e in first.get("embeds", [])):
                return int(thread["id"])
        return None

    async def _guild_id(self, channel_id: int) -> int | None:
        guild = getattr(self.bot.get_channel(channel_id), "guild", None)
        if guild is not None:
            return guild.id
        subs = await asyncio.to_thread(alerts.subscriptions, self.store)
        return next((s["guild_id"] for s in subs if s["channel_id"] == channel_id), None)

    async def send(self, d: alerts.Delivery) -> int | None:
        content, allowed = role_mentions(d.role_id)
        embed = alert_embed(alerts.alert_card(d.post))
        try:
            if d.mode == alerts.FORUM:
                with handle_message_parameters(content=content, embed=embed, allowed_mentions=allowed,
                                               channel_payload={"name": thread_name(d.post),
                                                                "auto_archive_duration": 10080}) as params:
                    data = await self.bot.http.start_thread_in_forum(d.channel_id, params=params)
                return int(data["id"])
            channel = self.bot.get_partial_messageable(d.channel_id)
            message = await channel.send(content=content, embed=embed, nonce=d.nonce,
                                         allowed_mentions=allowed)
        except (discord.Forbidden, discord.NotFound) as exc:
            raise alerts.SendError(f"{exc.status} {exc.text or type(exc).__name__}", permanent=True) from None
        except discord.HTTPException as exc:  # 429 was already retried by discord.py; 5xx: next round
            raise alerts.SendError(f"{exc.status} {exc.text or 'HTTP error'}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise alerts.SendError(f"network: {exc or type(exc).__name__}") from None
        if d.mode == alerts.THREADS:
            alerts.crash_point("after_message")  # the crash tests: sent, its thread not started yet
            await self._start_thread(d, message.id)
        return message.id

    async def _start_thread(self, d: alerts.Delivery, message_id: int) -> None:
        """The thread of an alert message (once: a second start is refused with THREAD_EXISTS)."""
        try:
            await self.bot.http.start_thread_with_message(d.channel_id, message_id, name=thread_name(d.post),
                                                          auto_archive_duration=10080)
        except discord.HTTPException as exc:
            if exc.code == THREAD_EXISTS:
                return
            raise alerts.SendError(f"{exc.status} {exc.text or 'HTTP error'} (starting the thread)",
                                   permanent=isinstance(exc, (discord.Forbidden, discord.NotFound))) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise alerts.SendError(f"network: {exc or type(exc).__name__}") from None

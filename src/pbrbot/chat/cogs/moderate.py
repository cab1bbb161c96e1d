"""Moderators' commands: /gaps, /curate pin|unpin|hide|unhide|list, /reindex.

Moderators only (chat/moderators.py): registered with default member permissions Manage Server, and refused
politely in code to anyone else. Replies are private and ping nobody. The engine calls run in the Ask cog's
worker threads (each reads through its own SQLite connection); /reindex runs an index run in a thread of its
own with its own SQLite connection and reports its progress in the channel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from pbrbot import asked, curation
from pbrbot.chat.cogs.ask import Ask
from pbrbot.chat.embeds import neutralize
from pbrbot.chat.moderators import PERMISSIONS, check_moderator, command_failed, reply
from pbrbot.indexer import IndexStats

if TYPE_CHECKING:
    from pbrbot.chat.bot import PbrBot
    from pbrbot.store import Store

log = logging.getLogger("pbrbot.moderate")
NO_PINGS = discord.AllowedMentions.none()
PROGRESS_EVERY = 10.0  # seconds between /reindex progress messages


def who(user: discord.abc.User) -> str:
    return f"discord:{user.id} ({user.name})"


class Moderate(commands.Cog):
    curate = app_commands.Group(name="curate", description="Pin answers and hide posts (moderators)",
                                guild_only=True, default_permissions=PERMISSIONS)

    def __init__(self, bot: PbrBot):
        self.bot = bot
        self.services = bot.services
        self._reindexing = threading.Lock()

    async def engine(self, fn, *args, **kwargs):
        ask = self.bot.get_cog("Ask")
        assert isinstance(ask, Ask)  # loaded before this cog (chat/bot.py)
        return await ask.engine(fn, *args, **kwargs)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return check_moderator(interaction, self.services.settings.moderator_role)

    async def cog_app_command_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await command_failed(interaction, error, log)

    # -- /gaps --------------------------------------------------------------------------------
    @app_commands.command(name="gaps")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)  # = moderators.PERMISSIONS
    @app_commands.describe(since="Only questions asked on or after this date (YYYY-MM-DD)")
    async def gaps(self, interaction: discord.Interaction, since: str | None = None) -> None:
        """What the archive failed to answer: refused questions and answers voted down, most frequent
        first."""
        from datetime import date

        try:
            since = date.fromisoformat(since.strip()).isoformat() if since else None
        except ValueError:
            await reply(interaction, f"“{neutralize(since)[:40]}” is not a date: give YYYY-MM-DD.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        s = self.services
        found = await self.engine(asked.gaps, s.store, s.embedder, s.glossary, s.searcher, since=since)
        if not found:
            await reply(interaction, "No knowledge gaps: every question was answered and no answer was "
                                     "voted down.")
            return
        lines = []
        for g in found[:15]:
            near = ", ".join(f"<{n['url']}>" for n in g["near"][:2])
            lines.append(f"**{g['count']}×** {g['kind']}: {neutralize(g['question'])[:150]}"
                         + (f"\n  near: {near}" if near else ""))
        await reply(interaction, "\n".join(lines))

    # -- /curate ------------------------------------------------------------------------------
    @curate.command(name="pin")
    @app_commands.describe(question="The question the quote answers (its rephrasings get it too)",
                           quote="Pin quote number N of the answer the bot gives now",
                           url="Or: a post in the archive (with text)",
                           text="The excerpt of that post, word for word")
    async def pin(self, interaction: discord.Interaction, question: app_commands.Range[str, 2, 240],
                  quote: app_commands.Range[int, 1, 10] | None = None, url: str | None = None,
                  text: str | None = None) -> None:
        """Pin a quote as the answer to a question and its rephrasings."""
        if (quote is None) == (url is None or text is None):
            await reply(interaction, "Give either `quote` (a number) or both `url` and `text`.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        chosen = await self.engine(self._quote, question, quote, url, text)
        pid = await self.engine(curation.pin, self.services.store, question, chosen, who(interaction.user))
        await reply(interaction, f"Pinned (pin {pid}) for “{neutralize(question)}”: "
                                 f"“{neutralize(chosen.text)[:300]}” — <{chosen.url}>. "
                                 f"`/curate unpin {pid}` undoes it.")

    def _quote(self, question: str, number: int | None, url: str | None, text: str | None):
        if number is not None:
            answer = self.services.answers.ask(question, n=number)
            if len(answer.quotes) < number:
                raise curation.CurationError(f"the answer has {len(answer.quotes)} quote(s), not {number}")
            return answer.quotes[number - 1]
        assert url is not None and text is not None  # pin() asks for a number or both
        return curation.excerpt_quote(self.services.store, url, text)

    @curate.command(name="unpin")
    @app_commands.describe(pin="The pin's number (see /curate list)")
    async def unpin(self, interaction: discord.Interaction, pin: int) -> None:
        """Undo a pin."""
        done = await self.engine(curation.unpin, self.services.store, pin, who(interaction.user))
        await reply(interaction, f"Unpinned {pin}." if done
                    else f"There is no active pin {pin} (see /curate list).")

    @curate.command(name="hide")
    @app_commands.describe(url="The link of a post in the archive")
    async def hide(self, interaction: discord.Interaction, url: str) -> None:
        """Leave a post out of every answer and alert, until /curate unhide."""
        await self._set_hidden(interaction, url, curation.hide, "Hidden", "That post was already hidden.")

    @curate.command(name="unhide")
    @app_commands.describe(url="The link of a hidden post")
    async def unhide(self, interaction: discord.Interaction, url: str) -> None:
        """Show a hidden post in answers and alerts again."""
        await self._set_hidden(interaction, url, curation.unhide, "Shown again", "That post is not hidden.")

    async def _set_hidden(self, interaction: discord.Interaction, url: str,
                          change: Callable[[Store, dict, str], bool], done: str, unchanged: str) -> None:
        """Hide or show again (`change`) the post at `url`, and say which, or that it already was."""
        post = await self._post(interaction, url)
        if post is not None:
            changed = await self.engine(change, self.services.store, post, who(interaction.user))
            await reply(interaction, f"{done}: **{neutralize(post['title'])}**." if changed else unchanged)

    async def _post(self, interaction: discord.Interaction, url: str) -> dict | None:
        post = await self.engine(self.services.store.get_post_by_url, url.strip())
        if post is None:
            await reply(interaction, "That link is not a post in the archive.")
        return post

    @curate.command(name="list")
    async def list_(self, interaction: discord.Interaction) -> None:
        """The pins and hidden posts, newest first, with who made them and when."""
        rows = await self.engine(curation.curations, self.services.store)
        if not rows:
            await reply(interaction, "No curations yet.")
            return
        lines = []
        for r in rows:
            what = (f"pin {r['id']}: “{neutralize(r['question'])}” → “{neutralize(r['quote'] or '')[:120]}”"
                    if r["kind"] == "pin" else f"hidden ({r['id']})")
            lines.append(f"{what} <{r['url']}> — {neutralize(r['created_by'])}, {r['created']}")
        await reply(interaction, "\n".join(lines))

    # -- /reindex -----------------------------------------------------------------------------
    @app_commands.command(name="reindex")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)  # = moderators.PERMISSIONS
    async def reindex(self, interaction: discord.Interaction) -> None:
        """Bring the search index up to date with the archive, with progress in this channel."""
        if not self._reindexing.acquire(blocking=False):
            await reply(interaction, "An index run is already going.")
            return
        try:
            channel = interaction.channel
            if not isinstance(channel, discord.abc.Messageable):
                await reply(interaction, "Start the index run in a text channel or thread: its progress goes "
                                         "there.")
                return
            await reply(interaction, "Index run started; progress follows in this channel.")
            await channel.send("Index run started by a moderator…", allowed_mentions=NO_PINGS)
            thread = asyncio.create_task(asyncio.to_thread(self._run_index))
            started = time.monotonic()
            while not thread.done():
                await asyncio.wait([thread], timeout=PROGRESS_EVERY)
                if not thread.done():
                    count = await asyncio.to_thread(self._count_passages)
                    await channel.send(f"Still indexing ({time.monotonic() - started:.0f} s; "
                                       f"{count:,} passages so far)…", allowed_mentions=NO_PINGS)
            try:
                stats = thread.result()
            except Exception as exc:
                log.exception("index run failed")
                await channel.send(f"Index run failed: {neutralize(str(exc))[:300]}",
                                   allowed_mentions=NO_PINGS)
                return
            await channel.send(f"Index run done in {stats.seconds:.1f} s: {stats.embedded:,} passages "
                               f"embedded, {stats.removed:,} removed, {stats.total:,} in the index.",
                               allowed_mentions=NO_PINGS)
        finally:
            self._reindexing.release()

    def _run_index(self) -> IndexStats:
        """An index run in this worker thread (the store gives each thread its own connection); the bot's
        searcher searches the new index at once."""
        return self.services.run_index(progress=False)

    def _count_passages(self) -> int:
        return self.services.store.count_passages()


async def setup(bot: PbrBot) -> None:
    await bot.add_cog(Moderate(bot))

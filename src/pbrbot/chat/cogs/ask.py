"""/ask, /define, /search, /latest, /about, mentions, and the answer buttons.

Every interaction is acknowledged at once (Discord allows 3 s) and the engine runs in a worker thread of its
own pool, so the gateway heartbeat and other users are never held up: answers run concurrently, each thread
reading through its own SQLite connection (Store.db), so a long question does not hold up a short one.
Formatting lives in pbrbot.chat.embeds (pure).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from pbrbot.chat import embeds
from pbrbot.chat.cogs.conversations import answer_turn, cannot_post, scope_of
from pbrbot.chat.views import FeedbackModal, MoreButton, VoteButton, answer_view, feedback_submitted
from pbrbot.definitions import UnknownTerm
from pbrbot.feedback import REASONS, record_feedback
from pbrbot.models import Answer
from pbrbot.tuning import Asker
from pbrbot.turns import Turn, Turns
from pbrbot.vectors import MANIFEST

if TYPE_CHECKING:
    from pbrbot.chat.bot import PbrBot

log = logging.getLogger("pbrbot.bot")
T = TypeVar("T")

PAGE = 3  # quotes per answer message
NO_PINGS = discord.AllowedMentions.none()
SORRY = "Sorry, something went wrong while answering. It has been logged; please try again in a moment."


def anywhere(command: T) -> T:
    """A command that servers and users can install, usable in servers, DMs and group DMs."""
    return app_commands.allowed_installs(guilds=True, users=True)(
        app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)(command))


ENGINE_THREADS = 4  # engine calls (answers, searches) running at once; more wait for a free thread


class Ask(commands.Cog):
    def __init__(self, bot: PbrBot):
        self.bot = bot
        self.services = bot.services
        self._cooldowns: dict[int, app_commands.Cooldown] = {}
        self._pool = ThreadPoolExecutor(max_workers=ENGINE_THREADS, thread_name_prefix="pbrbot-engine")

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(MoreButton, VoteButton)

    async def cog_unload(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- plumbing ---------------------------------------------------------------------------
    async def engine(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (blocking) engine call in a worker thread; several run at once."""
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def retry_after(self, user_id: int) -> float | None:
        """Seconds until the user may ask again, or None (and the question is counted)."""
        settings = self.services.settings
        bucket = self._cooldowns.setdefault(user_id,
                                            app_commands.Cooldown(settings.ask_rate, settings.ask_per))
        return bucket.update_rate_limit()

    async def admit(self, interaction: discord.Interaction) -> bool:
        wait = self.retry_after(interaction.user.id)
        if wait is None:
            return True
        await interaction.response.send_message(
            f"You're asking faster than I can keep up — you can ask again in {wait:.0f} s.", ephemeral=True)
        return False

    async def report(self, interaction: discord.Interaction, error: BaseException) -> None:
        """Log the traceback; tell the user briefly and privately."""
        log.error("error handling /%s from user %s", getattr(interaction.command, "name", "button"),
                  interaction.user.id, exc_info=error)
        try:
            if not interaction.response.is_done():
                await interaction.response.send_message(SORRY, ephemeral=True)
                return
            try:  # the public "thinking…" message must not stay: replace it with a private note
                await interaction.delete_original_response()
            except discord.HTTPException:
                pass
            await interaction.followup.send(SORRY, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell user %s about the error", interaction.user.id)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await self.report(interaction, getattr(error, "original", error))

    def _answer(self, kind: str, text: str, n: int, scope: str | None = None, earlier: Turn | None = None,
                asker: Asker | None = None) -> tuple[Answer, list[list[int]]]:
        """The answer (curated, votes applied: tuning.py) and each quote's passage ids. `scope`: the
        conversation (cogs/conversations.py) whose last turns a question is read with, and to which it is
        added; else `earlier`, the answer a message replies to. An `asker`'s question is logged for the
        knowledge gaps (unless PBRBOT_RECORD_QUESTIONS is off)."""
        if not self.services.settings.record_questions:
            asker = None
        if kind == "define":
            answer = self.services.answers.define(text)
        else:
            turns = Turns(self.services.store) if scope else None
            context = turns.recent(scope) if turns and scope else [earlier] if earlier else []
            answer = self.services.conversation.ask(text, context, n=n, asker=asker)
            if turns and scope:
                turns.add(scope, Turn.from_answer(answer))
        return answer, [list(q.passage_ids) for q in answer.quotes] if answer.found else []

    @staticmethod
    def asker(user: discord.abc.User, guild_id: int | None) -> Asker:
        return Asker("discord", user.id, guild_id)

    def _message_for(self, answer: Answer, groups: list[list[int]], kind: str, start: int = 0,
                     private: bool = False) -> dict:
        """The kwargs of the message that shows `answer`'s quotes from `start` (`groups`: each quote's
        passage ids)."""
        more = kind == "ask" and answer.found and len(answer.quotes) >= start + PAGE
        shown = groups[start:] if len(groups) == len(answer.quotes) else groups
        return {"embed": embeds.answer_embed(answer, start),
                "view": answer_view(kind, len(answer.quotes), shown, more=more, follow_up=not private),
                "allowed_mentions": NO_PINGS}

    async def _reply(self, interaction: discord.Interaction, kind: str, text: str) -> None:
        """Answer publicly, or privately where the bot cannot post."""
        private = cannot_post(interaction)
        await interaction.response.defer(thinking=True, ephemeral=private)
        try:
            answer, ids = await self.engine(self._answer, kind, text, PAGE,
                                            scope_of(interaction.channel, interaction.user.id),
                                            asker=self.asker(interaction.user, interaction.guild_id))
        except UnknownTerm as exc:
            await self._unknown_term(interaction, exc)
            return
        await interaction.followup.send(**self._message_for(answer, ids, kind, private=private),
                                        ephemeral=private)

    async def _unknown_term(self, interaction: discord.Interaction, exc: UnknownTerm) -> None:
        """A /define of a term the glossary doesn't know: the nearest known ones, privately."""
        hint = f" Did you mean {', '.join(f'**{s}**' for s in exc.suggestions)}?" if exc.suggestions else ""
        note = (f"I don't know the term “{embeds.neutralize(exc.term)[:100]}”.{hint} "
                "Start typing in `/define` to see the known terms, or try `/ask`.")
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            pass
        await interaction.followup.send(note, ephemeral=True, allowed_mentions=NO_PINGS)

    # -- slash commands ---------------------------------------------------------------------
    @app_commands.command(name="ask")
    @anywhere
    @app_commands.describe(question="Your question, in your own words")
    async def ask(self, interaction: discord.Interaction, question: app_commands.Range[str, 2, 240]):
        """Ask the russellwebster.com archive: answers are quotes with links to the posts."""
        if await self.admit(interaction):
            await self._reply(interaction, "ask", question)

    @app_commands.command(name="define")
    @anywhere
    @app_commands.describe(term="A term or acronym, e.g. PbR, TR, CRC")
    async def define(self, interaction: discord.Interaction, term: app_commands.Range[str, 1, 100]):
        """What a criminal-justice term means, quoted from the archive."""
        if await self.admit(interaction):
            await self._reply(interaction, "define", term)

    @define.autocomplete("term")
    async def define_autocomplete(self, interaction: discord.Interaction, current: str):
        names = self.services.glossary.suggest(current, limit=25)
        return [app_commands.Choice(name=name[:100], value=name[:100]) for name in names]

    @app_commands.command(name="search")
    @anywhere
    @app_commands.describe(query="Words to look for")
    async def search(self, interaction: discord.Interaction, query: app_commands.Range[str, 2, 200]):
        """Posts in the archive that match your words, with links."""
        if not await self.admit(interaction):
            return
        await interaction.response.defer(thinking=True)
        hits = await self.engine(self.services.searcher.search, query, k=10, per_post=1)
        posts = [{"title": h.title, "url": h.url, "date": h.date, "snippet": h.text} for h in hits]
        await interaction.followup.send(
            embed=embeds.post_list_embed(f"Posts matching “{query}”", posts, "No post matches those words."),
            allowed_mentions=NO_PINGS)

    @app_commands.command(name="latest")
    @anywhere
    @app_commands.describe(topic="Only posts on this topic (optional)")
    async def latest(self, interaction: discord.Interaction, topic: app_commands.Range[str, 0, 100] = ""):
        """The newest posts in the archive, or on a topic."""
        await interaction.response.defer(thinking=True, ephemeral=cannot_post(interaction))
        if topic.strip():
            rows = await self.engine(self.services.conversation.latest, topic, 10)
        else:
            rows = await self.engine(lambda: list(islice(self.services.store.iter_posts(), 10)))
        title = f"Newest posts on “{topic}”" if topic.strip() else "Newest posts"
        await interaction.followup.send(
            embed=embeds.post_list_embed(title, rows, "No dated post on that in the archive."),
            allowed_mentions=NO_PINGS)

    @app_commands.command(name="about")
    @anywhere
    async def about(self, interaction: discord.Interaction):
        """What is in the archive: its size, newest post, index age and model."""
        await interaction.response.defer(thinking=True)
        fields = await self.engine(self._about_fields)
        await interaction.followup.send(
            embed=embeds.fields_embed("About pbrbot", fields, "Quoted, linked answers from the "
                                      "russellwebster.com blog archive. Try `/ask`, `/define` or `/search`."),
            allowed_mentions=NO_PINGS)

    def _about_fields(self) -> dict[str, str]:
        store, settings = self.services.store, self.services.settings
        newest = next(store.iter_posts(), None)
        return {
            "Archive": f"{store.count_posts():,} posts, {store.count_passages():,} passages",
            "Newest post": embeds.link(newest["title"], newest["url"])
            + f" · {embeds.pretty_date(newest['date'])}" if newest else "none yet",
            "Index": index_age(settings.data_dir),
            "Model": f"{settings.model} ({settings.embed_backend})",
        }

    # -- buttons ----------------------------------------------------------------------------
    async def more(self, interaction: discord.Interaction, kind: str, shown: int) -> None:
        """The "More" button: ask again for more quotes and show the ones after the first `shown`."""
        try:
            if not await self.admit(interaction):
                return
            embed = embeds.embed_of(interaction.message, strict=True)
            question = embeds.taken_as_in(embed) or embeds.question_in(embed)[1]  # a follow-up, as understood
            await interaction.response.defer(thinking=True)
            answer, ids = await self.engine(self._answer, kind, question, shown + PAGE)
            if len(answer.quotes) <= shown:
                await interaction.delete_original_response()
                await interaction.followup.send("That's all the archive has on this question.",
                                                ephemeral=True)
                return
            await interaction.followup.send(**self._message_for(answer, ids, kind, start=shown))
        except Exception as exc:  # noqa: BLE001 - every failure is told to the user
            await self.report(interaction, exc)

    async def vote(self, interaction: discord.Interaction, vote: int, groups: list[list[int]]) -> None:
        """👍/👎: the feedback form (which quote; for 👎 what was wrong and a comment); see on_interaction."""
        try:
            titles = [q["title"] for q in embeds.quotes_in(embeds.embed_of(interaction.message))]
            await interaction.response.send_modal(FeedbackModal(vote, titles, REASONS, groups))
        except Exception as exc:  # noqa: BLE001 - every failure is told to the user
            await self.report(interaction, exc)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A submitted feedback form: stored with the question and the quotes of the message it came from,
        each with its passage ids."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        submitted = feedback_submitted(dict(interaction.data or {}))
        if submitted is None:
            return
        vote, groups, quote, reason, comment = submitted
        embed = embeds.embed_of(interaction.message)
        await self.record_vote(interaction, vote, embeds.question_in(embed)[1], embeds.quotes_in(embed),
                               groups, quote, reason, comment)

    async def record_vote(self, interaction: discord.Interaction, vote: int, question: str,
                          shown: list[dict], groups: list[list[int]], quote: int | None, reason: str | None,
                          comment: str) -> None:
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            quotes = [{**q, "passage_ids": groups[i] if i < len(groups) else []} for i, q in enumerate(shown)]
            chosen = (groups[quote] if quote is not None and quote < len(groups)
                      else [i for g in groups for i in g])
            await self.engine(record_feedback, self.services.store, user_id=interaction.user.id,
                              guild_id=interaction.guild_id, question=question, vote=vote, passage_ids=chosen,
                              quotes=quotes, quote=quote, reason=reason, comment=comment)
            await interaction.followup.send("Thanks — your feedback was recorded for the moderators.",
                                            ephemeral=True, allowed_mentions=NO_PINGS)
        except Exception as exc:  # noqa: BLE001 - every failure is told to the user
            await self.report(interaction, exc)

    # -- mentions and replies ---------------------------------------------------------------
    def question_in_message(self, message: discord.Message) -> str | None:
        """The question when the message mentions the bot or replies to it, else None."""
        me = self.bot.user
        if me is None or message.author.bot:
            return None
        ref = message.reference.resolved if message.reference else None
        replying = isinstance(ref, discord.Message) and ref.author.id == me.id
        direct = isinstance(message.channel, discord.DMChannel)  # in a DM with the bot, every message asks
        if not replying and me not in message.mentions and not direct:
            return None
        return re.sub(rf"<@!?{me.id}>", " ", message.content).strip()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        question = self.question_in_message(message)
        if question is None:
            return
        reply: dict[str, Any] = {"allowed_mentions": NO_PINGS, "mention_author": False}
        try:
            if not question:
                await message.reply("Ask me a question about the archive, e.g. “what is payment by results?” "
                                    "— or use `/ask`.", **reply)
                return
            wait = self.retry_after(message.author.id)
            if wait is not None:
                await message.reply(f"You're asking faster than I can keep up — try again in {wait:.0f} s.",
                                    **reply)
                return
            ref = message.reference.resolved if message.reference else None
            me = self.bot.user  # outside a thread, a reply to an answer is read with that answer
            earlier = (answer_turn(ref) if isinstance(ref, discord.Message) and me is not None
                       and ref.author.id == me.id else None)
            asker = self.asker(message.author, message.guild.id if message.guild else None)
            job = asyncio.ensure_future(self.engine(self._answer, "ask", question, PAGE,
                                                    scope_of(message.channel, message.author.id), earlier,
                                                    asker=asker))
            try:
                async with message.channel.typing():
                    answer, ids = await job
                await message.reply(**{**self._message_for(answer, ids, "ask"), "mention_author": False})
            except discord.Forbidden:  # the bot may not post here: answer privately, in a DM
                answer, ids = await job
                await message.author.send(**self._message_for(answer, ids, "ask", private=True))
        except Exception:
            log.exception("error answering a mention from user %s", message.author.id)
            try:
                await message.reply(SORRY, **reply)
            except discord.HTTPException:
                pass


def index_age(data_dir: Path) -> str:
    """When the vector index was last saved (its manifest is written last)."""
    manifest = Path(data_dir) / MANIFEST
    if not manifest.exists():
        return "not built yet (`pbrbot index`)"
    when = datetime.fromtimestamp(manifest.stat().st_mtime, UTC)
    hours = (datetime.now(UTC) - when).total_seconds() / 3600
    if hours < 1:
        age = f"{hours * 60:.0f} minutes"
    else:
        age = f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.0f} days"
    return f"updated {age} ago ({when:%Y-%m-%d %H:%M} UTC)"


async def setup(bot: PbrBot) -> None:
    await bot.add_cog(Ask(bot))

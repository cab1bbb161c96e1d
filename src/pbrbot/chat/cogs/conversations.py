"""Conversations in Discord: the "Ask a follow-up" button (a thread on the answer), the message context
menus "Ask the archive" and "Define terms here", and where a conversation's turns are kept.

A conversation's scope is its thread ("thread:<id>") or, in DMs and group DMs, the user there
("dm:<channel id>:<user id>"); in a plain channel a question has no earlier turns. Turns are kept by
turns.Turns in SQLite, so a restart keeps them; no scope reads another's. The answering itself is the
Ask cog's (pbrbot.chat.cogs.ask), which reads the scope with `scope_of`.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from pbrbot.chat import embeds
from pbrbot.chat.views import FollowUpButton
from pbrbot.turns import Turn, Turns

log = logging.getLogger("pbrbot.bot")

NO_PINGS = discord.AllowedMentions.none()
# The user-facing commands: installable by a server or a user, usable in servers, DMs and group DMs.
USER_INSTALLS = app_commands.AppInstallationType(guild=True, user=True)
ANY_CONTEXT = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)
# Moderators' commands: servers only.
GUILD_INSTALLS = app_commands.AppInstallationType(guild=True, user=False)
GUILD_CONTEXT = app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)
THREAD_TYPES = (discord.ChannelType.public_thread, discord.ChannelType.private_thread,
                discord.ChannelType.news_thread)
THREAD_HINT = ("Ask your follow-up here: reply to my answer or mention me, or use `/ask` in this thread. "
               "I read it with this conversation's last few questions.")
DM_HINT = "Ask your follow-up here with `/ask` or by replying to me: I keep the last few questions."
NO_THREAD = "I can't open a thread here: reply to my answer and mention me instead."
NO_TERMS = "I found no glossary terms in that message (`/define` lists the ones I know)."
MAX_TERMS = 10


def scope_of(channel, user_id: int) -> str | None:
    """The conversation a message or command belongs to: its thread, or the user in a DM / group DM; None
    in a plain server channel."""
    kind = getattr(channel, "type", None)
    if isinstance(channel, discord.Thread) or kind in THREAD_TYPES:
        return f"thread:{channel.id}"
    if isinstance(channel, (discord.DMChannel, discord.GroupChannel)) \
            or kind in (discord.ChannelType.private, discord.ChannelType.group):
        return f"dm:{channel.id}:{user_id}"
    return None


def cannot_post(interaction: discord.Interaction) -> bool:
    """Whether the bot may not post (and embed) where the interaction came from: then answer
    privately."""
    perms = interaction.app_permissions
    in_thread = (scope_of(interaction.channel, 0) or "").startswith("thread:")
    can_send = perms.send_messages_in_threads if in_thread else perms.send_messages
    return not (can_send and perms.embed_links)


def post_url(link: str) -> str:
    """A quote's deep link without its text fragment."""
    return link.split("#:~:text=", 1)[0]


def answer_turn(message: discord.Message) -> Turn | None:
    """The turn an answer message of the bot shows (its question, how it was taken, the posts it quoted),
    read back from its embed; None for another message."""
    embed = embeds.embed_of(message)
    kind, question = embeds.question_in(embed)
    if kind != "ask" or not question or not embeds.quotes_in(embed):  # a define, a "not in the archive"
        return None
    return Turn(question, embeds.taken_as_in(embed),
                [{"url": post_url(q["link"]), "title": q["title"]} for q in embeds.quotes_in(embed)])


class Conversations(commands.Cog):
    def __init__(self, bot):
        self.bot = bot
        self.services = bot.services
        self.menus = [
            app_commands.ContextMenu(name="Ask the archive", callback=self.ask_message,
                                     allowed_installs=USER_INSTALLS, allowed_contexts=ANY_CONTEXT),
            app_commands.ContextMenu(name="Define terms here", callback=self.define_message,
                                     allowed_installs=USER_INSTALLS, allowed_contexts=ANY_CONTEXT),
        ]

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(FollowUpButton)
        for menu in self.menus:
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    @property
    def ask(self):
        return self.bot.get_cog("Ask")

    # -- "Ask a follow-up" ------------------------------------------------------------------
    async def follow_up(self, interaction: discord.Interaction) -> None:
        """Open a thread on the answer (seeded with its question and quotes), or point to the thread or DM
        the answer is already in."""
        try:
            if scope_of(interaction.channel, interaction.user.id) is not None:
                await self._private(interaction, THREAD_HINT if interaction.guild_id else DM_HINT)
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
            message = interaction.message
            assert message is not None  # a button's interaction comes with the message it is under
            turn = answer_turn(message)
            thread = await self._thread_for(message, turn.question if turn else "")
            if thread is None:
                await interaction.followup.send(NO_THREAD, ephemeral=True, allowed_mentions=NO_PINGS)
                return
            scope = f"thread:{thread.id}"
            fresh = await self.ask.engine(self._seed, scope, turn)
            if fresh:
                await thread.send(THREAD_HINT, allowed_mentions=NO_PINGS)
            await interaction.followup.send(f"Follow-ups go in the thread {thread.mention}.",
                                            ephemeral=True, allowed_mentions=NO_PINGS)
        except Exception as exc:  # noqa: BLE001 - every failure is told to the user
            await self.ask.report(interaction, exc)

    @staticmethod
    async def _private(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)

    async def _thread_for(self, message: discord.Message, question: str) -> discord.Thread | None:
        name = embeds.trim(embeds.neutralize(question), 90) or "Follow-up"
        try:
            return await message.create_thread(name=name)
        except discord.HTTPException as exc:
            if exc.code != 160004:  # anything but "a thread has already been created for this message"
                log.warning("could not open a thread on message %s: %s", message.id, exc)
                return None
        thread = message.guild.get_thread(message.id) if message.guild else None
        return thread or await self.bot.fetch_channel(message.id)  # a message's thread has its id

    def _seed(self, scope: str, turn: Turn | None) -> bool:
        turns = Turns(self.services.store)
        if turns.has(scope):
            return False
        if turn is not None:
            turns.add(scope, turn)
        return True

    # -- message context menus --------------------------------------------------------------
    async def ask_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Ask the archive the chosen message's text: publicly, or privately where the bot cannot post."""
        try:
            question = " ".join((message.content or "").split())[:240]
            if len(question) < 2:
                await self._private(interaction, "That message has no text to ask about.")
                return
            if not await self.ask.admit(interaction):
                return
            await self.ask._reply(interaction, "ask", question)
        except Exception as exc:  # noqa: BLE001 - every failure is told to the user
            await self.ask.report(interaction, exc)

    async def define_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The glossary terms in the chosen message, each with its gloss and best quote: privately."""
        try:
            terms = self.services.glossary.mentioned(message.content or "")
            if not terms:
                await self._private(interaction, NO_TERMS)
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
            fields = await self.ask.engine(self._definitions, terms[:MAX_TERMS])
            await interaction.followup.send(embed=embeds.fields_embed("Terms in this message", fields),
                                            ephemeral=True, allowed_mentions=NO_PINGS)
        except Exception as exc:  # noqa: BLE001 - every failure is told to the user
            await self.ask.report(interaction, exc)

    def _definitions(self, terms) -> dict[str, str]:
        fields = {}
        for term in terms:
            value = embeds.neutralize(term.gloss) or "—"
            answer = self.services.answers.define(term.name)  # without hidden posts (tuning.py)
            if answer.found and answer.quotes:
                best = answer.quotes[0]
                value += (f"\n> {embeds.trim(' '.join(embeds.neutralize(best.text).split()), 500)}\n"
                          + embeds.source_line(best.title, best.url, best.date))
            fields[term.name] = value
        return fields


async def setup(bot) -> None:
    await bot.add_cog(Conversations(bot))

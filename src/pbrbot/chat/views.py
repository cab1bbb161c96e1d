"""The buttons under an answer: "More" and 👍/👎. Their state lives in the custom_id (and the message's
embed), so they keep working after a restart: `bot.add_dynamic_items(MoreButton, VoteButton)`."""

from __future__ import annotations

import re
from typing import Protocol, cast

import discord
from discord.ext import commands

MAX_CUSTOM_ID = 100


class MoreButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"pbr:more:(?P<kind>ask|define):(?P<shown>\d+)"):
    """Shows the next quotes for the question in the message's embed."""

    def __init__(self, kind: str, shown: int):
        super().__init__(discord.ui.Button(label="More", style=discord.ButtonStyle.secondary,
                                           custom_id=f"pbr:more:{kind}:{shown}"))
        self.kind, self.shown = kind, shown

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match):
        return cls(match["kind"], int(match["shown"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _ask_cog(interaction).more(interaction, self.kind, self.shown)


class VoteButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"pbr:vote:(?P<vote>up|down):(?P<ids>[\d.]*)"):
    """Stores a 👍/👎 with the question and the quoted passages (ids carried in the custom_id)."""

    def __init__(self, vote: str, ids: list[int]):
        custom_id = f"pbr:vote:{vote}:"
        for pid in ids:  # as many passage ids as fit in Discord's 100 characters
            if len(custom_id) + len(str(pid)) + 1 > MAX_CUSTOM_ID:
                break
            custom_id += ("." if custom_id[-1] != ":" else "") + str(pid)
        super().__init__(discord.ui.Button(emoji="👍" if vote == "up" else "👎",
                                           style=discord.ButtonStyle.secondary, custom_id=custom_id))
        self.vote, self.ids = vote, ids

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match):
        return cls(match["vote"], [int(x) for x in match["ids"].split(".") if x])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _ask_cog(interaction).vote(interaction, 1 if self.vote == "up" else -1, self.ids)


class ButtonHandler(Protocol):
    """What answers the buttons: the Ask cog (chat/cogs/ask.py)."""

    async def more(self, interaction: discord.Interaction, kind: str, shown: int) -> None: ...

    async def vote(self, interaction: discord.Interaction, vote: int, ids: list[int]) -> None: ...


def _ask_cog(interaction: discord.Interaction) -> ButtonHandler:
    bot = interaction.client
    assert isinstance(bot, commands.Bot)
    return cast(ButtonHandler, bot.get_cog("Ask"))


class FollowUpButton(discord.ui.DynamicItem[discord.ui.Button], template=r"pbr:follow"):
    """"Ask a follow-up": opens a thread on the answer (see cogs/conversations.py)."""

    def __init__(self):
        super().__init__(discord.ui.Button(label="Ask a follow-up", style=discord.ButtonStyle.secondary,
                                           custom_id="pbr:follow"))

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match):
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.get_cog("Conversations").follow_up(interaction)


def answer_view(kind: str, shown: int, passage_ids: list[int], more: bool = True,
                follow_up: bool = True) -> discord.ui.View:
    """The buttons for an answer message: More (when there may be more quotes), 👍, 👎 and, on a public
    answer to a question, Ask a follow-up."""
    view = discord.ui.View(timeout=None)
    if more:
        view.add_item(MoreButton(kind, shown))
    view.add_item(VoteButton("up", passage_ids))
    view.add_item(VoteButton("down", passage_ids))
    if follow_up and kind == "ask":
        view.add_item(FollowUpButton())
    return view

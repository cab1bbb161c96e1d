"""The buttons under an answer: "More" and 👍/👎 (which open the feedback form). Their state lives in the
custom_id (and the message's embed), so they keep working after a restart:
`bot.add_dynamic_items(MoreButton, VoteButton)`."""

from __future__ import annotations

import re
from typing import Any, Protocol, cast

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


def encode_groups(groups: list[list[int]], room: int) -> str:
    """Each quote's passage ids, "." between quotes and "+" within one, as many whole quotes as fit in `room`
    characters (a button from before quotes carried groups has one id per quote: it reads the same)."""
    out = ""
    for ids in groups:
        part = "+".join(str(i) for i in ids)
        if len(out) + len(part) + 1 > room:
            break
        out += ("." if out else "") + part
    return out


def decode_groups(text: str) -> list[list[int]]:
    return [[int(i) for i in part.split("+") if i] for part in text.split(".") if part]


class VoteButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"pbr:vote:(?P<vote>up|down):(?P<ids>[\d.+]*)"):
    """👍/👎: opens a short form (which quote; for 👎 what was wrong, and a comment), then stores the vote
    with the question and the quotes shown, each with its passage ids (carried in the custom_id)."""

    def __init__(self, vote: str, groups: list[list[int]]):
        prefix = f"pbr:vote:{vote}:"
        super().__init__(discord.ui.Button(emoji="👍" if vote == "up" else "👎",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=prefix + encode_groups(groups,
                                                                            MAX_CUSTOM_ID - len(prefix))))
        self.vote, self.groups = vote, groups

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match):
        return cls(match["vote"], decode_groups(match["ids"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _ask_cog(interaction).vote(interaction, 1 if self.vote == "up" else -1, self.groups)


class ButtonHandler(Protocol):
    """What answers the buttons: the Ask cog (chat/cogs/ask.py)."""

    async def more(self, interaction: discord.Interaction, kind: str, shown: int) -> None: ...

    async def vote(self, interaction: discord.Interaction, vote: int, groups: list[list[int]]) -> None: ...


class FollowUpHandler(Protocol):
    """What answers "Ask a follow-up": the Conversations cog (chat/cogs/conversations.py)."""

    async def follow_up(self, interaction: discord.Interaction) -> None: ...


def _ask_cog(interaction: discord.Interaction) -> ButtonHandler:
    bot = interaction.client
    assert isinstance(bot, commands.Bot)
    return cast(ButtonHandler, bot.get_cog("Ask"))


def _conversations_cog(interaction: discord.Interaction) -> FollowUpHandler:
    bot = interaction.client
    assert isinstance(bot, commands.Bot)
    return cast(FollowUpHandler, bot.get_cog("Conversations"))


class FollowUpButton(discord.ui.DynamicItem[discord.ui.Button], template=r"pbr:follow"):
    """"Ask a follow-up": opens a thread on the answer (see cogs/conversations.py)."""

    def __init__(self):
        super().__init__(discord.ui.Button(label="Ask a follow-up", style=discord.ButtonStyle.secondary,
                                           custom_id="pbr:follow"))

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match):
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        await _conversations_cog(interaction).follow_up(interaction)


ALL = "all"
FEEDBACK = "pbr:fb:"  # the feedback form's custom_id: FEEDBACK + "up"|"down" + ":" + the quotes' passage ids


class FeedbackModal(discord.ui.Modal):
    """"What was wrong?" (👎) or "What helped?" (👍): which quote, the reason (👎), an optional comment.

    Its state is in its custom_id (the vote and each quote's passage ids) and the message it was opened
    from, so an answer sent after a restart is still stored: the form is sent unregistered (stopped) and the
    Ask cog reads every submission of it (`feedback_submitted`)."""

    def __init__(self, vote: int, titles: list[str], reasons: dict[str, str], groups: list[list[int]]):
        prefix = f"{FEEDBACK}{'down' if vote < 0 else 'up'}:"
        super().__init__(title="What was wrong?" if vote < 0 else "What helped?",
                         custom_id=prefix + encode_groups(groups, MAX_CUSTOM_ID - len(prefix)))
        options = [discord.SelectOption(label=f"Quote {n}: {t}"[:100], value=str(n - 1))
                   for n, t in enumerate(titles, start=1)]
        options.append(discord.SelectOption(label="All of them" if titles else "The answer", value=ALL,
                                            default=True))
        self.add_item(discord.ui.Label(text="Which quote?", component=discord.ui.Select(
            custom_id="pbr:feedback:quote", options=options[:25], min_values=1, max_values=1, required=True)))
        if vote < 0:
            self.add_item(discord.ui.Label(text="What was wrong?", component=discord.ui.Select(
                custom_id="pbr:feedback:reason", min_values=1, max_values=1, required=True,
                options=[discord.SelectOption(label=label, value=key) for key, label in reasons.items()])))
        self.add_item(discord.ui.Label(text="Anything to add? (optional)", component=discord.ui.TextInput(
            custom_id="pbr:feedback:comment", style=discord.TextStyle.paragraph, required=False,
            max_length=500)))
        self.stop()  # not kept by discord.py: every submission goes to feedback_submitted


def feedback_submitted(data: dict) -> tuple[int, list[list[int]], int | None, str | None, str] | None:
    """A submitted feedback form's (vote, each quote's passage ids, quote number or None for all, reason,
    comment), from the interaction's data; None for any other modal."""
    custom_id = data.get("custom_id") or ""
    if not custom_id.startswith(FEEDBACK):
        return None
    vote, _, ids = custom_id[len(FEEDBACK):].partition(":")
    values: dict[str, Any] = {}
    stack = list(data.get("components") or [])
    while stack:
        item = stack.pop()
        stack.extend(item.get("components") or [])
        if item.get("component"):
            stack.append(item["component"])
        if item.get("custom_id"):
            values[item["custom_id"]] = item.get("values", item.get("value"))
    which = (values.get("pbr:feedback:quote") or [ALL])[0]
    reason = (values.get("pbr:feedback:reason") or [None])[0]
    return (1 if vote == "up" else -1, decode_groups(ids), int(which) if str(which).isdigit() else None,
            reason, str(values.get("pbr:feedback:comment") or ""))


def answer_view(kind: str, shown: int, groups: list[list[int]], more: bool = True,
                follow_up: bool = True) -> discord.ui.View:
    """The buttons for an answer message: More (when there may be more quotes), 👍, 👎 (`groups`: the
    passage ids of each quote shown) and, on a public answer to a question, Ask a follow-up."""
    view = discord.ui.View(timeout=None)
    if more:
        view.add_item(MoreButton(kind, shown))
    view.add_item(VoteButton("up", groups))
    view.add_item(VoteButton("down", groups))
    if follow_up and kind == "ask":
        view.add_item(FollowUpButton())
    return view

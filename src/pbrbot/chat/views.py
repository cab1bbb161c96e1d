"""The buttons under an answer: "More" and 👍/👎 (which open the feedback form). Their state lives in the
custom_id (and the message's embed), so they keep working after a restart: `bot.add_dynamic_items(MoreButton,
VoteButton)`."""

from __future__ import annotations

import re

import discord

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
        await interaction.client.get_cog("Ask").more(interaction, self.kind, self.shown)


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
    """👍/👎: opens a short form (which quote; for 👎 what was wrong, and a comment), then stores the vote with
    the question and the quotes shown, each with its passage ids (carried in the custom_id)."""

    def __init__(self, vote: str, groups: list[list[int]]):
        prefix = f"pbr:vote:{vote}:"
        super().__init__(discord.ui.Button(emoji="👍" if vote == "up" else "👎",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=prefix + encode_groups(groups, MAX_CUSTOM_ID - len(prefix))))
        self.vote, self.groups = vote, groups

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match):
        return cls(match["vote"], decode_groups(match["ids"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.get_cog("Ask").vote(interaction, 1 if self.vote == "up" else -1, self.groups)


ALL = "all"


class FeedbackModal(discord.ui.Modal):
    """"What was wrong?" (👎) or "What helped?" (👍): which quote, the reason (👎), an optional comment.
    `on_vote(interaction, quote: int | None, reason: str | None, comment: str)` stores it."""

    def __init__(self, vote: int, titles: list[str], reasons: dict[str, str], on_vote):
        super().__init__(title="What was wrong?" if vote < 0 else "What helped?", timeout=900,
                         custom_id=f"pbr:feedback:{'down' if vote < 0 else 'up'}:{id(self)}")
        self.on_vote = on_vote
        options = [discord.SelectOption(label=f"Quote {n}: {t}"[:100], value=str(n - 1))
                   for n, t in enumerate(titles, start=1)]
        options.append(discord.SelectOption(label="All of them" if titles else "The answer", value=ALL, default=True))
        self.which = discord.ui.Select(custom_id="pbr:feedback:quote", options=options[:25], min_values=1,
                                       max_values=1, required=True)
        self.add_item(discord.ui.Label(text="Which quote?", component=self.which))
        self.reason = None
        if vote < 0:
            self.reason = discord.ui.Select(
                custom_id="pbr:feedback:reason", min_values=1, max_values=1, required=True,
                options=[discord.SelectOption(label=label, value=key) for key, label in reasons.items()])
            self.add_item(discord.ui.Label(text="What was wrong?", component=self.reason))
        self.comment = discord.ui.TextInput(custom_id="pbr:feedback:comment", style=discord.TextStyle.paragraph,
                                            required=False, max_length=500)
        self.add_item(discord.ui.Label(text="Anything to add? (optional)", component=self.comment))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        which = self.which.values[0] if self.which.values else ALL
        reason = self.reason.values[0] if self.reason is not None and self.reason.values else None
        await self.on_vote(interaction, None if which == ALL else int(which), reason, self.comment.value or "")


def answer_view(kind: str, shown: int, groups: list[list[int]], more: bool = True) -> discord.ui.View:
    """The buttons for an answer message: More (when there may be more quotes), 👍, 👎 (`groups`: the
    passage ids of each quote shown)."""
    view = discord.ui.View(timeout=None)
    if more:
        view.add_item(MoreButton(kind, shown))
    view.add_item(VoteButton("up", groups))
    view.add_item(VoteButton("down", groups))
    return view

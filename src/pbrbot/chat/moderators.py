"""Who is a moderator: a member with the Manage Server permission, or with the role named in
PBRBOT_MODERATOR_ROLE. Moderator commands are registered with default member permissions Manage Server (so
others do not see them unless a server grants them) and refuse anyone else politely, in code."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from pbrbot.chat.embeds import CONTENT, trim
from pbrbot.errors import PbrbotError

MODERATOR_ONLY = ("Sorry, only moderators can use this: members with the Manage Server permission "
                  "(or the moderator role set for this bot).")
PERMISSIONS = discord.Permissions(manage_guild=True)  # the commands' default member permissions


class NotModerator(app_commands.CheckFailure):
    """A moderator command used by someone who is not one."""


def is_moderator(interaction: discord.Interaction, role_name: str | None) -> bool:
    if interaction.guild is None:
        return False
    if interaction.permissions.manage_guild:
        return True
    wanted = (role_name or "").strip().casefold()
    roles = getattr(interaction.user, "roles", [])
    return bool(wanted) and any(r.name.casefold() == wanted for r in roles)


def check_moderator(interaction: discord.Interaction, role_name: str | None) -> bool:
    """For a cog's interaction_check: True, or NotModerator (the cog replies MODERATOR_ONLY)."""
    if not is_moderator(interaction, role_name):
        raise NotModerator(MODERATOR_ONLY)
    return True


async def reply(interaction: discord.Interaction, text: str) -> None:
    """A private answer that pings nobody, whether or not the interaction was deferred."""
    text = trim(text, CONTENT)
    none = discord.AllowedMentions.none()
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=none)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=none)


async def command_failed(interaction: discord.Interaction, error: Exception, log: logging.Logger) -> None:
    """For a moderators' cog's cog_app_command_error: MODERATOR_ONLY to anyone else, a PbrbotError's
    message as it is, anything else logged (to `log`) and told briefly; privately."""
    original = getattr(error, "original", error)
    if isinstance(error, app_commands.CheckFailure):
        message = MODERATOR_ONLY
    elif isinstance(original, PbrbotError):
        message = str(original)
    else:
        log.error("moderator command failed", exc_info=original)
        message = "Sorry, that failed; the error is in the bot's log."
    await reply(interaction, message)

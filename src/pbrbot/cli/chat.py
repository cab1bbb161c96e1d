"""CLI commands for the Discord bot: run, sync-commands, feedback."""

from __future__ import annotations

import asyncio
import json
import logging

import click

from pbrbot.feedback import REASONS, list_feedback


@click.command("run")
@click.pass_obj
def run_cmd(services) -> None:
    """Start the Discord bot (needs PBRBOT_DISCORD_TOKEN; see bot/README.md). Ctrl-C stops it."""
    for name in ("pbrbot", "discord"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
            if name == "discord":  # its client's info is 'logging in using static token': noise
                logging.getLogger("discord.client").setLevel(logging.WARNING)
    from pbrbot.chat.bot import run_bot  # discord.py: ~0.8 s of CPU, imported only for the bot's commands

    run_bot(services, echo=lambda line: click.echo(line, err=True))


@click.command("sync-commands")
@click.pass_obj
def sync_cmd(services) -> None:
    """Register the slash commands with Discord: in PBRBOT_DEV_GUILD_ID if set (instant), else globally."""
    from pbrbot.chat.bot import sync_only

    synced = asyncio.run(sync_only(services))
    guild = services.settings.dev_guild_id
    where = f"in guild {guild}" if guild else "globally (they can take up to an hour to appear)"
    click.echo(f"registered {len(synced)} commands {where}: " + ", ".join(f"/{c.name}" for c in synced))


@click.command("feedback")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of the votes.")
@click.pass_obj
def feedback_cmd(services, as_json: bool) -> None:
    """List the 👍/👎 votes people gave answers in Discord, newest first, with the quoted posts."""
    rows = list_feedback(services.store)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        click.echo(f"{row['created']}  {'+1' if row['vote'] > 0 else '-1'}  {row['question']}")
        if row.get("reason") or row.get("comment"):
            said = " — ".join(x for x in (REASONS.get(row.get("reason") or "", ""), row.get("comment") or "")
                              if x)
            click.echo(f"{'':28}{said}")
        for n, quote in enumerate(row["quotes"]):
            voted = "* " if row.get("quote") == n else ""
            click.echo(f"{'':28}{voted}{quote['title']}  {quote['link']}")
    ups = sum(1 for r in rows if r["vote"] > 0)
    click.echo(f"{len(rows)} votes: {ups} up, {len(rows) - ups} down")


COMMANDS = [run_cmd, sync_cmd, feedback_cmd]

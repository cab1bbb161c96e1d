"""CLI commands for moderators: gaps (what the archive failed to answer) and curate (pins, hidden posts)."""

from __future__ import annotations

import getpass
import json
from datetime import date

import click

from pbrbot import asked, curation
from pbrbot.cli.exits import echo_list


def who() -> str:
    """The CLI user, as curations record them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _date(ctx, param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date: give YYYY-MM-DD") from None


def gap_list(services, since: str | None = None, include_resolved: bool = False) -> list[dict]:
    """The knowledge gaps of the services' archive (asked.gaps with its parts)."""
    return asked.gaps(services.store, services.embedder, services.glossary, services.searcher, since=since,
                      include_resolved=include_resolved)


def render_gaps(gaps: list[dict]) -> str:
    if not gaps:
        return "No knowledge gaps: every question logged was answered, and no answer was voted down."
    lines = []
    for g in gaps:
        state = " [resolved]" if g["resolved"] else ""
        lines.append(f"{g['count']:4}x  {g['kind']:9}  {g['question']}{state}")
        lines.extend(f"{'':17}also: {e}" for e in g["examples"] if e != g["question"])
        lines.extend(f"{'':17}near: {n['title']}  {n['url']}" for n in g["near"])
    return "\n".join(lines)


@click.group("gaps", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help='Print a JSON list of {"question", "count", "kind", '
              '"examples", "near": [{"url", "title"}], "resolved"}.')
@click.option("--since", callback=_date,
              help="Only questions asked (and votes given) on or after DATE (YYYY-MM-DD).")
@click.option("--all", "include_resolved", is_flag=True, help="Include the gaps marked resolved.")
@click.pass_context
def gaps_cmd(ctx, as_json: bool, since: str | None, include_resolved: bool) -> None:
    """What the archive failed to answer: refused questions and answers voted down, rephrasings counted as
    one question, most frequent first, with the nearest posts. `gaps resolve QUESTION` closes one."""
    if ctx.invoked_subcommand is not None:
        return
    gaps = gap_list(ctx.obj, since, include_resolved)
    click.echo(json.dumps(gaps, ensure_ascii=False) if as_json else render_gaps(gaps))


@gaps_cmd.command("resolve")
@click.argument("question")
@click.pass_obj
def gaps_resolve(services, question: str) -> None:
    """Mark the gap of QUESTION (and its rephrasings) resolved, e.g. once a post answers it."""
    rid = asked.resolve(services.store, question, who())
    click.echo(f"resolved (resolution {rid}); `pbrbot gaps reopen` undoes it")


@gaps_cmd.command("reopen")
@click.argument("question")
@click.pass_obj
def gaps_reopen(services, question: str) -> None:
    """Undo `gaps resolve` for QUESTION (and its rephrasings)."""
    n = asked.reopen(services.store, question, who(), services.embedder, services.glossary)
    if not n:
        raise click.ClickException("no resolved gap matches that question; `pbrbot gaps --all` lists them")
    click.echo(f"reopened {n} resolution(s)")


@click.group("curate")
def curate_cmd() -> None:
    """Moderators' curation: pin a quote as the answer to a question, hide a post from answers and alerts.
    Each is recorded with who and when; unpin and unhide undo them."""


@curate_cmd.command("pin")
@click.argument("question")
@click.option("--quote", "number", type=click.IntRange(1, 10),
              help="Pin quote number N of the current answer.")
@click.option("--url", help="Pin an excerpt of this stored post (with --text).")
@click.option("--text", help="The excerpt to pin, copied word for word from the post at --url.")
@click.pass_obj
def pin_cmd(services, question: str, number: int | None, url: str | None, text: str | None) -> None:
    """Pin a quote as the answer to QUESTION and its rephrasings: quote N of today's answer (--quote N), or an
    excerpt of a post (--url URL --text TEXT), e.g. to answer a knowledge gap."""
    quote = pick_quote(services, question, number, url, text)
    pid = curation.pin(services.store, question, quote, who())
    click.echo(f"pinned (pin {pid}): “{quote.text}” — {quote.title} {quote.link}")


def pick_quote(services, question: str, number: int | None, url: str | None, text: str | None):
    """The quote a pin names: number N of the current answer, or an excerpt of a post."""
    if (number is None) == (url is None and text is None):
        raise click.UsageError("give either --quote N or --url URL --text TEXT")
    if number is not None:
        answer = services.answers.ask(question, n=number)
        if len(answer.quotes) < number:
            raise click.ClickException(f"the answer to that question has {len(answer.quotes)} quote(s), "
                                       f"not {number}")
        return answer.quotes[number - 1]
    if not url or not text:
        raise click.UsageError("--url and --text go together")
    return curation.excerpt_quote(services.store, url, text)


@curate_cmd.command("unpin")
@click.argument("pin_id", type=int)
@click.pass_obj
def unpin_cmd(services, pin_id: int) -> None:
    """Undo pin PIN_ID (see `curate list`)."""
    if not curation.unpin(services.store, pin_id, who()):
        raise click.ClickException(f"no active pin {pin_id}; `pbrbot curate list` shows them")
    click.echo(f"unpinned {pin_id}")


def _post(services, url: str) -> dict:
    post = services.store.get_post_by_url(url.strip())
    if post is None:
        raise click.ClickException(f"no stored post has the URL {url}; `pbrbot posts` lists them")
    return post


@curate_cmd.command("hide")
@click.argument("url")
@click.pass_obj
def hide_cmd(services, url: str) -> None:
    """Leave the post at URL out of every answer and alert (until `curate unhide`)."""
    post = _post(services, url)
    done = curation.hide(services.store, post, who())
    click.echo(f"hidden: {post['title']}" if done else "that post was already hidden")


@curate_cmd.command("unhide")
@click.argument("url")
@click.pass_obj
def unhide_cmd(services, url: str) -> None:
    """Show the post at URL in answers and alerts again."""
    post = _post(services, url)
    if not curation.unhide(services.store, post, who()):
        raise click.ClickException("that post is not hidden")
    click.echo(f"shown again: {post['title']}")


@curate_cmd.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, kind, question, url, quote, "
              "created, created_by, undone, undone_by}.")
@click.option("--all", "include_undone", is_flag=True, help="Include undone curations.")
@click.pass_obj
def list_cmd(services, as_json: bool, include_undone: bool) -> None:
    """The pins and hidden posts, newest first."""
    rows = curation.curations(services.store, include_undone)
    echo_list(rows, as_json, "No curations yet.", _curation_line)


def _curation_line(r: dict) -> str:
    undone = f"  (undone {r['undone']} by {r['undone_by']})" if r["undone"] else ""
    what = f"“{r['question']}” -> “{r['quote']}”" if r["kind"] == "pin" else ""
    return f"{r['id']:4}  {r['kind']:4}  {r['created']} by {r['created_by']}{undone}\n      {what} {r['url']}"


COMMANDS = [gaps_cmd, curate_cmd]

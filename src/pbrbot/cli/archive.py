"""CLI commands for the archive: ingest, posts, show."""

from __future__ import annotations

import json
import sys

import click
from tqdm import tqdm

from pbrbot.blocks import stored_spans
from pbrbot.cli.exits import PARTLY_DONE
from pbrbot.ingest import ingest
from pbrbot.sources.sample import sample_dir


@click.command("ingest")
@click.argument("sources", nargs=-1)
@click.option("--sample", is_flag=True, help="Also load the sample archive that ships with pbrbot.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
def ingest_cmd(services, sources: tuple[str, ...], sample: bool, as_json: bool) -> None:
    """Read posts from SOURCES into the archive.

    A SOURCE is a WordPress site URL, an RSS/Atom feed (URL or file), a WordPress export (WXR),
    saved HTML pages (file or folder), a JSON Lines file, or a folder of text dumps with manifest.json.
    """
    specs = list(sources) + ([str(sample_dir())] if sample else [])
    if not specs:
        raise click.UsageError("give at least one SOURCE, or --sample")
    new = not services.settings.db_path.exists()
    services.store  # noqa: B018 - made here, or one line saying why it cannot be
    if new and not as_json:  # --json: stderr holds only warnings and errors
        click.echo(f"a new archive in {services.settings.data_dir}", err=True)
    # The number of posts is not known until a source is read: the bar counts them, with no total.
    with tqdm(unit=" posts", desc="ingesting", file=sys.stderr, disable=not sys.stderr.isatty() or as_json,
              bar_format="{desc}: {n_fmt}{unit} [{elapsed}, {rate_fmt}]") as bar:
        report = ingest(services.store, services.settings, specs, on_item=lambda item: bar.update(1))
    for skip in report.skipped:
        click.echo(f"skipped {skip.source} ({skip.where}): {skip.reason}", err=True)
    for note in report.warnings:
        click.echo(f"warning: {note.source} ({note.where}): {note.reason}", err=True)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(report.summary())
        if report.new or report.updated:
            click.echo("next: run `pbrbot index` to make the new posts searchable")
    if report.errors or (report.read == 0 and report.skipped):
        # nothing read: an error; some sources read and others not: partly done
        sys.exit(PARTLY_DONE if report.read else 1)


@click.command("posts")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {url, title, date, words}.")
@click.pass_obj
def posts_cmd(services, as_json: bool) -> None:
    """List the stored posts, newest first."""
    rows = [{"url": r["url"], "title": r["title"], "date": r["date"], "words": r["words"]}
            for r in services.store.iter_posts()]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        click.echo(f"{r['date'] or 'undated':10}  {r['words']:6} words  {r['title']}\n{'':12}{r['url']}")
    click.echo(f"{len(rows)} posts in {services.settings.data_dir}")


SHOWN = ("url", "title", "date", "modified", "author", "tags", "words", "text")
# How `show` marks each kind of block (presentation only: the stored text has no markers).
SHOW_MARKERS = {"p": "", "h": "## ", "li": "• ", "quote": "> ", "caption": "[caption] "}


@click.command("show")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"url", "title", "date", "modified", "author", "tags", "words", "text", "kind", '
                   '"blocks": [{"kind", "text"}, ...]}.')
@click.pass_obj
def show_cmd(services, url: str, as_json: bool) -> None:
    """Print one stored post, one block a line (## heading, • list item, > quote)."""
    post = services.store.get_post_by_url(url)
    if post is None:
        raise click.ClickException(f"no stored post has the URL {url}; `pbrbot posts` lists them")
    blocks = [{"kind": kind, "text": post["text"][s:e]}
              for kind, s, e in stored_spans(post["text"], post.get("blocks"))]
    if as_json:
        click.echo(json.dumps({**{k: post.get(k) for k in SHOWN}, "kind": post.get("kind") or "post",
                               "blocks": blocks}, ensure_ascii=False))
        return
    listing = "  (listing page: its teasers are quoted one by one)" if post.get("kind") == "listing" else ""
    click.echo(f"{post['title']}\n{post['date'] or 'undated'}  {post['url']}{listing}\n")
    for block in blocks:
        click.echo(SHOW_MARKERS.get(block["kind"], "") + block["text"])


COMMANDS = [ingest_cmd, posts_cmd, show_cmd]

"""CLI commands: index, search."""

from __future__ import annotations

import json

import click

from pbrbot.cli import warm_model
from pbrbot.errors import valid_text


def _notice(message: str) -> None:
    click.echo(message, err=True)


@click.command("index")
@click.option("--rebuild", is_flag=True, help="Start the vector index afresh (after changing PBRBOT_MODEL).")
@click.option("--json", "as_json", is_flag=True, help='Print {"embedded", "removed", "total", "seconds"}.')
@click.pass_obj
def index_cmd(services, rebuild: bool, as_json: bool) -> None:
    """Split new and changed posts into passages and embed them; drop those of deleted posts."""
    stats = services.run_index(rebuild=rebuild, progress=not as_json)
    if as_json:
        click.echo(json.dumps(stats.as_dict()))
        return
    rate = f" ({stats.rate:.1f} passages/s)" if stats.embedded else ""
    sentences = f", {stats.sentences} sentences embedded for quoting" if stats.sentences else ""
    click.echo(f"embedded {stats.embedded}{rate}, removed {stats.removed}{sentences}, "
               f"{stats.total} passages searchable, {stats.seconds:.1f} s")


@click.command("search")
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True, help="How many hits.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as one JSON object.")
@click.pass_obj
def search_cmd(services, query: str, k: int, as_json: bool) -> None:
    """Show the passages that best match QUERY (meaning and keywords combined)."""
    query = valid_text(query, "the query")
    warm_model(services)
    services.ensure_index(echo=_notice)
    hits = services.searcher.search(query, k=k)
    if as_json:
        click.echo(json.dumps({"query": query, "hits": [
            {"passage_id": h.passage_id, "url": h.url, "title": h.title, "date": h.date, "text": h.text,
             "score": round(h.score, 6), "dense_rank": h.dense_rank, "keyword_rank": h.keyword_rank}
            for h in hits]}, ensure_ascii=False))
        return
    if not hits:
        click.echo("no matching passages")
    for n, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())
        snippet = snippet if len(snippet) <= 300 else snippet[:297].rsplit(" ", 1)[0] + "…"
        click.echo(f"{n}. {h.title} ({h.date or 'undated'})\n   {h.url}\n   {snippet}\n")


COMMANDS = [index_cmd, search_cmd]

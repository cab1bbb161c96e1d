"""JSON Lines: one post per line, {url, title, text | html, date?, author?, tags?}. A bad line is skipped by
number."""

from __future__ import annotations

import json
from collections.abc import Iterator

from pbrbot.blocks import text_blocks
from pbrbot.models import Kept, Post, Skip
from pbrbot.sources import SourceContext
from pbrbot.sources.clean import build_post
from pbrbot.sources.dates import parse_date
from pbrbot.sources.files import read_local, suffix
from pbrbot.sources.html import html_blocks
from pbrbot.sources.http import is_url

SUFFIXES = (".jsonl", ".ndjson")


def detect(spec: str) -> bool:
    return not is_url(spec) and suffix(spec) in SUFFIXES


def read(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]:
    lines = read_local(spec).split(b"\n")
    total = len(lines)
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                post, problem = parse_line(raw.decode("utf-8"), spec, with_problem=True)
                if problem:
                    yield Kept(spec, f"line {number}", problem)
                yield post
            except ValueError as exc:
                yield Skip(spec, f"line {number}", str(exc))
        if number % 100 == 0 or number == total:
            ctx.progress(number, total)


def parse_line(line: str, source: str, with_problem: bool = False):
    """One line -> a Post; ValueError with the reason when the line is not a usable post. An unreadable
    optional field (the date) leaves the post without it: with `with_problem`, (post, what was left out)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        # a ValueError like every other bad line: the reader skips the line by number
        raise ValueError("expected a JSON object {url, title, text or html, ...}")  # noqa: TRY004
    url, title = obj.get("url"), obj.get("title")
    if not isinstance(url, str) or not is_url(url):
        raise ValueError("needs 'url', an http(s) URL")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("needs a non-empty 'title'")
    title = title.strip()
    if isinstance(obj.get("text"), str) and obj["text"].strip():
        blocks = text_blocks(obj["text"])
    elif isinstance(obj.get("html"), str) and obj["html"].strip():
        blocks = html_blocks(obj["html"])
    else:
        raise ValueError("needs 'text' or 'html'")
    date = problem = None
    if obj.get("date"):
        date = parse_date(obj["date"]) if isinstance(obj["date"], str) else None
        if date is None:
            problem = f"'date' {obj['date']!r} is not an ISO 8601 date: kept undated"
    tags = obj.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("'tags' must be a list of strings")
    author = obj.get("author")
    post = build_post(
        blocks, url=url, title=title, date=date, author=author if isinstance(author, str) else None,
        tags=tags, guid=str(obj["id"]) if obj.get("id") is not None else None, source=source,
    )
    if post is None:
        raise ValueError("no text left after removing site chrome")
    return (post, problem) if with_problem else post

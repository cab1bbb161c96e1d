"""RSS 2.0 and Atom feeds, from a URL or a file (feedparser).

Full text from content:encoded (Atom content) when present, else the summary. A malformed entry is
skipped by index and GUID; a broken document keeps the entries feedparser recovered and reports the
error as a Skip. URL feeds are fetched conditionally (ETag / Last-Modified kept in the store's meta):
an unchanged feed yields nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import feedparser

from pbrbot.models import Post, Skip
from pbrbot.sources import SourceContext, SourceError
from pbrbot.sources.clean import build_post
from pbrbot.sources.dates import parse_date, parse_datetime
from pbrbot.sources.files import read_local, suffix
from pbrbot.sources.html import html_blocks, html_to_text
from pbrbot.sources.http import Fetcher, is_url

log = logging.getLogger(__name__)

SUFFIXES = (".xml", ".rss", ".atom")
_FEED_PATH = re.compile(r"/(feed|rss|atom)(/|$)")  # /feed/, /category/x/feed, /rss
# feedparser flags these as "bozo" although every entry was read.
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


def detect(spec: str) -> bool:
    if is_url(spec):
        parts = urlsplit(spec)
        path = parts.path.lower()
        return path.endswith(SUFFIXES) or bool(_FEED_PATH.search(path)) or "feed=" in parts.query
    return suffix(spec) in SUFFIXES


def read(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]:
    if is_url(spec):
        with Fetcher(ctx.settings) as http:
            yield from read_url(spec, ctx, http)
    else:
        yield from parse_feed(read_local(spec), spec, ctx)


def read_url(url: str, ctx: SourceContext, http: Fetcher) -> Iterator[Post | Skip]:
    """Fetch a feed (conditionally when this store fetched it before) and read its entries."""
    key = f"feed:{url}"
    etag = ctx.store.get_meta(f"{key}:etag") if ctx.store else None
    last_modified = ctx.store.get_meta(f"{key}:last_modified") if ctx.store else None
    result = http.get(url, etag=etag, last_modified=last_modified)
    if result.not_modified:
        log.info("%s: not modified since the last fetch", url)
        return
    if not result.ok:
        raise SourceError(f"{url}: {result.describe()}; check the feed URL")
    well_formed = True
    for item in parse_feed(result.body, url, ctx):
        well_formed = well_formed and not (isinstance(item, Skip) and item.where == "document")
        yield item
    if ctx.store and well_formed:  # a broken document's ETag must not turn the next fetch into a 304
        ctx.store.set_meta(f"{key}:etag", result.etag)
        ctx.store.set_meta(f"{key}:last_modified", result.last_modified)


def parse_feed(document: bytes | str, source: str, ctx: SourceContext | None = None) -> Iterator[Post | Skip]:
    """Posts (and Skips) from an RSS/Atom document; SourceError if it is not a feed at all."""
    parsed = feedparser.parse(document, sanitize_html=False, resolve_relative_uris=False)
    entries = parsed.entries
    if parsed.bozo and not entries and not parsed.version:
        reason = _bozo_reason(parsed)
        raise SourceError(f"{source}: not an RSS or Atom feed ({reason})")
    if parsed.bozo and not isinstance(parsed.get("bozo_exception"), _HARMLESS):
        yield Skip(source, "document",
                   f"the feed is not well-formed ({_bozo_reason(parsed)}); kept the {len(entries)} "
                   "entries that could be read")
    for index, entry in enumerate(entries, start=1):
        yield entry_to_post(entry, index, source)
        if ctx:
            ctx.progress(index, len(entries))


def entry_to_post(entry, index: int, source: str) -> Post | Skip:
    guid = entry.get("id") or entry.get("link")
    where = f"entry {index}" + (f" (guid {guid})" if guid else "")
    link = entry.get("link")
    title = html_to_text(entry.get("title") or "").replace("\n", " ").strip()
    if not link or not is_url(link):
        return Skip(source, where, "entry has no http(s) link")
    if not title:
        return Skip(source, where, "entry has no title")
    html = _full_content(entry) or entry.get("summary") or ""
    updated = parse_datetime(entry.get("updated_parsed") or entry.get("updated"))
    post = build_post(
        html_blocks(html), url=link, title=title,
        date=parse_date(entry.get("published_parsed") or entry.get("updated_parsed")),
        modified=updated.isoformat() if updated else None,
        author=entry.get("author") or None,
        tags=[t["term"] for t in entry.get("tags") or [] if t.get("term")],
        guid=guid, source=source,
    )
    return post if post is not None else Skip(source, where, "entry has no text")


def _full_content(entry) -> str | None:
    """content:encoded (RSS) or <content> (Atom): the longest one."""
    contents = [c.get("value") or "" for c in entry.get("content") or []]
    return max(contents, key=len) if contents else None


def _bozo_reason(parsed) -> str:
    exc = parsed.get("bozo_exception")
    return str(exc).strip() or type(exc).__name__ if exc else "unknown error"

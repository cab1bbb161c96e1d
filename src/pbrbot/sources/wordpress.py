"""A WordPress site by URL: the REST API (/wp-json/wp/v2/posts), falling back to the site's feed.

Pages of 100 posts ordered by modification time (oldest first, so a post edited during the crawl is
seen again rather than skipped), as many as X-WP-TotalPages says. After a complete run the newest
`modified_gmt` is kept in the store's meta; later runs ask only for posts modified after it
(`modified_after`). A site without the API (404, an HTML page, invalid JSON) is read from /feed/.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from pbrbot.models import Post, Skip
from pbrbot.sources import SourceContext, SourceError
from pbrbot.sources.clean import build_post
from pbrbot.sources.dates import parse_date
from pbrbot.sources.feed import read_url as read_feed_url
from pbrbot.sources.html import html_blocks, html_to_text
from pbrbot.sources.http import Fetcher, FetchResult, is_url

log = logging.getLogger(__name__)

API_PATH = "/wp-json/wp/v2/posts"
PER_PAGE = 100


def detect(spec: str) -> bool:
    return is_url(spec)


def site_base(spec: str) -> str:
    """https://site/blog/wp-json/wp/v2/posts?x -> https://site/blog"""
    parts = urlsplit(spec)
    path = parts.path.split("/wp-json")[0].rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def watermark_key(base: str) -> str:
    return f"wordpress:{base}:modified_gmt"


def read(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]:
    base = site_base(spec)
    api = base + API_PATH
    key = watermark_key(base)
    since = ctx.store.get_meta(key) if ctx.store else None
    params = {"per_page": PER_PAGE, "orderby": "modified", "order": "asc", "_embed": "author,wp:term"}
    if since:
        # WordPress compares modified_after with the site-local post_modified, converting a date that
        # carries a zone: the "Z" makes the GMT watermark right whatever the site's timezone.
        params["modified_after"] = since + "Z"
    with Fetcher(ctx.settings) as http:
        first = http.get(api, params={**params, "page": 1})
        items, problem = _posts_page(first)
        if items is None:
            log.warning("%s: no WordPress REST API (%s); reading the feed instead", base, problem)
            feed = base + "/feed/"
            try:
                yield from read_feed_url(feed, ctx, http)
            except SourceError as exc:
                raise SourceError(f"{base}: no WordPress REST API at {api} ({problem}) and no feed: {exc}") \
                    from None
            return
        pages = _int(first.headers.get("x-wp-totalpages"), default=1)
        newest, complete = since, True
        for page in range(1, pages + 1):
            if page > 1:
                try:
                    items, problem = _posts_page(http.get(api, params={**params, "page": page}))
                except SourceError as exc:
                    items, problem = None, str(exc)
                if items is None:
                    complete = False
                    yield Skip(api, f"page {page} of {pages}", problem)
                    continue
            for item in items or ():  # (never None here: a page without posts was skipped above)
                yield item_to_post(item, api)
                modified = item.get("modified_gmt") if isinstance(item, dict) else None
                if isinstance(modified, str) and (newest is None or modified > newest):
                    newest = modified
            ctx.progress(page, pages)
    if ctx.store and complete and newest and newest != since:
        ctx.store.set_meta(key, newest)


def _posts_page(result: FetchResult) -> tuple[list | None, str]:
    """The page's list of posts, or None and what is wrong with it."""
    if not result.ok:
        return None, result.describe()
    try:
        data = json.loads(result.body)
    except ValueError:
        kind = "an HTML page" if b"<html" in result.body[:2048].lower() else "invalid JSON"
        return None, f"the response is {kind}"
    if not isinstance(data, list):
        return None, "the response is not a list of posts"
    return data, ""


def item_to_post(item, source: str) -> Post | Skip:
    if not isinstance(item, dict):
        return Skip(source, "post ?", "not a JSON object")
    post_id = item.get("id")
    where = f"post id {post_id}"
    link = item.get("link")
    title = html_to_text(_rendered(item.get("title"))).replace("\n", " ").strip()
    if not isinstance(link, str) or not is_url(link):
        return Skip(source, where, "post has no http(s) link")
    if not title:
        return Skip(source, where, "post has no title")
    content = item["content"] if isinstance(item.get("content"), dict) else {}
    if content.get("protected"):
        return Skip(source, where, "post is password protected")
    author, tags = _embedded(item)
    post = build_post(
        html_blocks(_rendered(content)), url=link, title=title,
        date=parse_date(item.get("date_gmt") or item.get("date")),
        modified=item.get("modified_gmt"), author=author, tags=tags,
        guid=str(post_id) if post_id is not None else None, source=source,
    )
    return post if post is not None else Skip(source, where, "post has no text")


def _rendered(field) -> str:
    return field.get("rendered") or "" if isinstance(field, dict) else str(field or "")


def _embedded(item: dict) -> tuple[str | None, list[str]]:
    """Author name and category/tag names, when the response has `_embedded` (asked for with _embed)."""
    embedded = item["_embedded"] if isinstance(item.get("_embedded"), dict) else {}
    authors = embedded.get("author") or []
    author = authors[0].get("name") if authors and isinstance(authors[0], dict) else None
    tags: list[str] = []
    for group in embedded.get("wp:term") or []:
        for term in group if isinstance(group, list) else []:
            name = html_to_text(term.get("name")) if isinstance(term, dict) else ""
            if name and name not in tags:
                tags.append(name)
    return author, tags


def _int(value, default: int) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default

"""WordPress export files (WXR): published posts only, with categories and tags. Read incrementally
(iterparse)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from pbrbot.models import Post, Skip
from pbrbot.sources import SourceContext
from pbrbot.sources.clean import build_post
from pbrbot.sources.dates import parse_date, parse_datetime
from pbrbot.sources.files import suffix
from pbrbot.sources.html import html_blocks, html_to_text
from pbrbot.sources.http import is_url

log = logging.getLogger(__name__)

WXR_MARKER = b"wordpress.org/export/"  # the namespace of every WXR version (1.0, 1.1, 1.2)
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
DC_NS = "http://purl.org/dc/elements/1.1/"


def detect(spec: str) -> bool:
    if is_url(spec) or suffix(spec) != ".xml" or not Path(spec).is_file():
        return False
    with open(spec, "rb") as f:
        return WXR_MARKER in f.read(4096)


def read(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]:
    size = Path(spec).stat().st_size
    index = skipped_other = 0
    try:
        with open(spec, "rb") as f:
            # Hostile exports: no entity is expanded (no XXE, no entity bomb), no DTD or anything else is
            # fetched, and libxml2's size limits stay on (said explicitly, not left to the lxml version).
            for _event, item in etree.iterparse(f, events=("end",), tag="item", resolve_entities=False,
                                                no_network=True, load_dtd=False, huge_tree=False):
                index += 1
                fields = _fields(item)
                if fields.get("post_type") != "post" or fields.get("status") != "publish":
                    skipped_other += 1
                else:
                    yield item_to_post(item, fields, index, spec)
                ctx.progress(f.tell(), size)
                item.clear()
                while item.getprevious() is not None:
                    del item.getparent()[0]
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else "?")
        yield Skip(spec, f"line {line}", f"the export is not well-formed XML ({exc.msg}); "
                                         f"kept the {index} items read before it")
    log.info("%s: %d items were not published posts (pages, drafts, attachments)", spec, skipped_other)


def _fields(item) -> dict[str, str]:
    """wp:* and other namespaced child values by local name (post_type, status, post_id, post_date_gmt,
    ...)."""
    fields: dict[str, str] = {}
    for child in item:
        if isinstance(child.tag, str):
            name = etree.QName(child).localname
            if name not in fields and name != "category":
                fields[name] = (child.text or "").strip() if name != "encoded" else child.text or ""
    return fields


def item_to_post(item, fields: dict[str, str], index: int, source: str) -> Post | Skip:
    post_id = fields.get("post_id")
    where = f"item {index}" + (f" (post id {post_id})" if post_id else "")
    title = html_to_text(fields.get("title")).replace("\n", " ").strip()
    link = fields.get("link", "")
    if not is_url(link):
        return Skip(source, where, "item has no http(s) link")
    if not title:
        return Skip(source, where, "item has no title")
    content = item.findtext(f"{{{CONTENT_NS}}}encoded") or ""
    date = fields.get("post_date_gmt")
    if not date or date.startswith("0000"):
        date = fields.get("post_date") or fields.get("pubDate")
    modified = parse_datetime(fields.get("post_modified_gmt"))
    tags = []
    for cat in item.iter("category"):
        name = (cat.text or "").strip()
        if cat.get("domain") in ("category", "post_tag") and name and name not in tags:
            tags.append(name)
    post = build_post(
        html_blocks(content), url=link, title=title, date=parse_date(date),
        modified=modified.isoformat() if modified else None,
        author=item.findtext(f"{{{DC_NS}}}creator") or None, tags=tags, guid=post_id, source=source,
    )
    return post if post is not None else Skip(source, where, "item has no text")

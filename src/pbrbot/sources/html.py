"""Saved HTML pages (a file or a folder of them), and html_to_text: the one HTML -> text helper of all
sources.

A saved page: main text by trafilatura (comments excluded), title, date and canonical URL
(link rel=canonical, og:url) from the page's metadata, then clean.strip_chrome.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import trafilatura
from lxml import etree
from lxml_html_clean import Cleaner

from pbrbot.blocks import KINDS, Block, layout, text_blocks
from pbrbot.models import Post, Skip
from pbrbot.sources import SourceContext
from pbrbot.sources.clean import build_post
from pbrbot.sources.dates import parse_date
from pbrbot.sources.files import read_local
from pbrbot.sources.http import is_url

SUFFIXES = (".html", ".htm")

# --- HTML fragment -> text ------------------------------------------------------------------------

_CLEANER = Cleaner(
    scripts=True, javascript=True, comments=True, style=True, inline_style=True, embedded=True,
    forms=True, page_structure=False, processing_instructions=True, meta=True, links=True,
    kill_tags={"form", "noscript", "iframe", "svg", "button", "nav", "select", "textarea", "template"},
)
_BLOCKS = {
    "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "ol", "p", "pre",
    "section", "table", "tr", "td", "th", "caption", "ul", "body",
}
_PARA = "\ue000"  # block break marker (a private-use character) while the tree is flattened
_KINDS_BY_TAG = {"h1": "h", "h2": "h", "h3": "h", "h4": "h", "h5": "h", "h6": "h", "li": "li", "dt": "li",
                 "dd": "li", "blockquote": "quote", "figcaption": "caption", "caption": "caption"}
_MARK = {kind: chr(0xE001 + n) for n, kind in enumerate(KINDS)}  # the kind of the block that follows
_KIND_OF = {mark: kind for kind, mark in _MARK.items()}
_WS = re.compile(r"\s+")
# Blocks whose class or id marks them as chrome (share buttons, related posts, subscribe boxes, comments).
_CHROME_TOKEN = re.compile(
    r"^(share|sharing|sharedaddy|sd-sharing|social|jp-relatedposts|relatedposts|related|subscribe|"
    r"newsletter|comments|comment-respond|respond)([-_].*)?$", re.IGNORECASE)
_DOCUMENT = re.compile(r"\s*(<\?xml[^>]*>\s*)?(<!doctype[^>]*>\s*)?(<!--.*?-->\s*)*<html",
                       re.IGNORECASE | re.DOTALL)


def html_to_text(html: str | None) -> str:
    """Plain text of an HTML fragment (a title, a term name): its blocks joined by a blank line."""
    return layout(html_blocks(html))[0]


def html_blocks(html: str | None) -> list[Block]:
    """The blocks of an HTML fragment or page: (kind, text) per paragraph, heading, list item, quote or
    caption; a <br> starts a new block of the same kind. Entities are decoded; no list marker is added.

    Scripts, styles, forms, iframes, navigation and share/related/comment boxes are dropped.
    """
    if not html or not html.strip():
        return []
    try:
        if _DOCUMENT.match(html):
            root = lxml.html.document_fromstring(html).find("body")
            if root is None:
                return []
        else:
            root = lxml.html.fragment_fromstring(html, create_parent="div")
        root = _CLEANER.clean_html(root)
        for el in [el for el in root.iter() if isinstance(el.tag, str) and _is_chrome(el)]:
            if el is not root and el.getparent() is not None:
                el.drop_tree()
    except (etree.ParserError, ValueError):
        return text_blocks(_WS.sub(" ", html))
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        in_pre = any(a.tag == "pre" for a in el.iterancestors())
        if not (in_pre or el.tag == "pre"):
            el.text = _WS.sub(" ", el.text) if el.text else el.text
        if el.tail and not in_pre:
            el.tail = _WS.sub(" ", el.tail)
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            continue
        if el.tag == "br":
            el.tail = "\n" + (el.tail or "")
        elif el.tag in _BLOCKS:
            el.text = _PARA + _MARK[_kind(el)] + (el.text or "")
            parent = el.getparent()
            el.tail = _PARA + _MARK[_kind(parent) if parent is not None else "p"] + (el.tail or "")
    blocks: list[Block] = []
    for chunk in root.text_content().split(_PARA):
        kind = _KIND_OF.get(chunk[:1], "p")
        for line in chunk.lstrip("".join(_KIND_OF)).split("\n"):
            if line.strip():
                blocks.append((kind, line))
    return blocks


def _kind(el) -> str:
    """The block kind of text directly inside `el`: from the nearest element that gives one."""
    for node in [el, *el.iterancestors()]:
        kind = _KINDS_BY_TAG.get(node.tag)
        if kind:
            return kind
    return "p"


def _is_chrome(el) -> bool:
    tokens = (el.get("class") or "").split() + (el.get("id") or "").split()
    return any(_CHROME_TOKEN.match(t) for t in tokens)


# --- saved pages ----------------------------------------------------------------------------------


def detect(spec: str) -> bool:
    if is_url(spec):
        return False
    path = Path(spec)
    if path.is_dir():
        return any(_pages(path))
    return path.suffix.lower() in SUFFIXES


def _pages(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.rglob("*")) if p.suffix.lower() in SUFFIXES and p.is_file())


def read(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]:
    path = Path(spec)
    pages = list(_pages(path)) if path.is_dir() else [path]
    for number, page in enumerate(pages, start=1):
        if not path.is_dir():
            raw = read_local(page)  # the one file given cannot be read: the whole source fails
        else:
            try:
                raw = page.read_bytes()
            except OSError as exc:
                yield Skip(str(page), page.name, f"cannot read file: {exc.strerror or exc}")
                continue
        yield read_page(raw, str(page))
        ctx.progress(number, len(pages))


def read_page(raw: bytes | str, source: str) -> Post | Skip:
    """One saved page -> a Post, or a Skip saying what the page lacks."""
    where = Path(source).name
    if isinstance(raw, bytes):
        raw = _decode(raw)
    if not raw.strip():
        return Skip(source, where, "empty file")
    try:
        meta = trafilatura.extract_metadata(raw)
        body = trafilatura.extract(raw, include_comments=False, include_tables=True, favor_precision=True,
                                   include_links=True, output_format="xml", with_metadata=False)
    except Exception as exc:  # noqa: BLE001 - trafilatura raises assorted parser errors on broken markup
        return Skip(source, where, f"not a readable HTML page ({exc})")
    url = meta.url if meta is not None else None
    if not url or not is_url(url):
        return Skip(source, where, "no canonical URL in the page (link rel=canonical or og:url)")
    title = (meta.title or "").strip()
    if not title:
        return Skip(source, where, "no title in the page")
    blocks, links = extracted_blocks(body)
    post = build_post(blocks, links=links, url=url, title=title, date=parse_date(meta.date),
                      author=meta.author or None, tags=_tags(meta), source=source)
    return post if post is not None else Skip(source, where, "no article text found in the page")


_XML_KINDS = {"head": "h", "item": "li", "quote": "quote", "p": "p", "cell": "p", "code": "p"}


def extracted_blocks(xml: str | None) -> tuple[list[Block], int]:
    """trafilatura's XML output -> (blocks, distinct link targets of its headings). A heading that links
    elsewhere is a teaser's title: a page with many is a listing (blocks.is_listing)."""
    if not xml:
        return [], 0
    root = etree.fromstring(xml.encode("utf-8"), etree.XMLParser(recover=True))
    main = root.find("main") if root is not None else None
    if main is None:
        return [], 0
    blocks: list[Block] = []
    for el in main.iter(*_XML_KINDS):
        if any(a.tag in _XML_KINDS for a in el.iterancestors()):
            continue  # nested: its text belongs to the outer block
        for inner in el.iter("lb", *_XML_KINDS):  # a line break or an inner block starts a new line
            if inner is not el:
                inner.text = ("\n" if inner.tag != "lb" else "") + (inner.text or "")
                inner.tail = "\n" + (inner.tail or "")
        for line in "".join(el.itertext()).split("\n"):
            if line.strip():
                blocks.append((_XML_KINDS[el.tag], line))
    links = {ref.get("target") for head in main.iter("head") for ref in head.iter("ref") if ref.get("target")}
    return blocks, len(links)



def _tags(meta) -> list[str]:
    tags: list[str] = []
    for value in (meta.categories or []) + (meta.tags or []):
        for tag in str(value).split(","):
            if tag.strip() and tag.strip() not in tags:
                tags.append(tag.strip())
    return tags


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")

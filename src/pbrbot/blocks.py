"""A post's block structure: paragraphs, headings, list items, quotes and captions (pure functions).

Every source turns a page into blocks, a list of (kind, text). A block's text is one line: no newline,
no list marker the page does not show (a bullet of an <li> is drawn by the browser, not written). The
stored post text is the blocks joined by a blank line, and the layout - one [kind, start, end] per block,
offsets into that text - is stored beside it. Sentences never cross a block, and a text-fragment term
must lie inside one block, since that is how the browser matches it.

Listing pages (category, tag, date, author and search pages, pages of teasers) are recognised here too.
"""

from __future__ import annotations

import itertools
import json
import re
from urllib.parse import urlsplit

KINDS = ("p", "h", "li", "quote", "caption")
Block = tuple[str, str]  # (kind, text)
Span = tuple[str, int, int]  # (kind, start, end) in the post text
SEPARATOR = "\n\n"
HEADING_WORDS = 14  # a line this short without a final stop reads as a heading
QUESTION_WORDS = 10  # and a line this short ending in "?"

_SPACE = re.compile(r"\s+")
# A bullet glyph (or "- ": a hyphen then a space starts no sentence) opening a line.
_BULLET = re.compile(r"^[•▪◦‣●○■□➢➤►·*-]\s+")
_INDENTED_ITEM = re.compile(r"^[ \t\u00a0]+(?:[-–—]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s+")
_FINAL_STOP = re.compile(r"[.!?…:;,\"'”’)]$")
_WORD = re.compile(r"\S+")
# A text dump may run a short caption into the next paragraph with no space: "... year 2This report".
_RUN_IN_CAPTION = re.compile(r"^([A-Z][^.!?:;(\n]{2,60}?[0-9])(?=[A-Z][a-z]+ [a-z])")
CAPTION_WORDS = 8
_ALNUM = re.compile(r"\w")
_NUMBERED = re.compile(r"^(\d{1,3})\.\s")


def clean_line(text: str) -> str:
    """Whitespace collapsed to single spaces, ends trimmed: how a block's text is kept."""
    return _SPACE.sub(" ", text).strip()


def looks_like_heading(text: str) -> bool:
    """A short line without a closing stop: a heading (or a caption) rather than a sentence."""
    text = text.strip()
    words = len(_WORD.findall(text))
    if text.endswith("?") and not text.endswith("??"):
        return 0 < words <= QUESTION_WORDS  # "What is parking?" standing alone
    return 0 < words <= HEADING_WORDS and not _FINAL_STOP.search(text)


def text_blocks(text: str) -> list[Block]:
    """Blocks of plain text (a text dump, a JSONL `text`): one block per non-empty line.

    Classified conservatively: a line with a bullet glyph, or an indented "1." / "a)" / "-" line, is a list
    item (marker removed); a short line without a final stop is a heading; everything else a paragraph.
    """
    blocks: list[Block] = []
    numbered = 0  # the number of the last numbered heading ("11. Penalty clause PbR now the favoured model")
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.replace("\u00a0", " ").rstrip()
        if not line.strip():
            continue
        body = _item_body(line)
        if body is not None:
            if body:
                blocks.append(("li", body))
            continue
        body = clean_line(line)
        caption = _RUN_IN_CAPTION.match(body)
        if caption and len(_WORD.findall(caption.group(1))) <= CAPTION_WORDS:
            blocks.append(("caption", caption.group(1)))  # "Savings year 2This report ...": an image's
            body = body[caption.end(1):]                   # caption run into the paragraph below it
        number = _NUMBERED.match(body)
        # The next of a run of numbered headings is a heading even when it ends with a stop ("12. Disgraced
        # former MP Jonathan Aitken is alive and well." after "11. Penalty clause ...").
        heading = looks_like_heading(body) or (
            number is not None and numbered > 0 and int(number.group(1)) == numbered + 1
            and len(_WORD.findall(body)) <= HEADING_WORDS)
        if heading:
            numbered = int(number.group(1)) if number else numbered
        blocks.append(("h" if heading else "p", body))
    return blocks


def _item_body(line: str) -> str | None:
    """The text of a list-item line without its marker, or None when the line is not a list item."""
    stripped = line.lstrip()
    m = _BULLET.match(stripped)
    if m:
        return clean_line(stripped[m.end():])
    m = _INDENTED_ITEM.match(line)
    return clean_line(line[m.end():]) if m else None


def layout(blocks: list[Block]) -> tuple[str, list[Span]]:
    """The post text (blocks joined by a blank line) and each block's (kind, start, end) in it."""
    parts: list[str] = []
    spans: list[Span] = []
    at = 0
    for kind, body in blocks:
        body = clean_line(body)
        if not body:
            continue
        if parts:
            at += len(SEPARATOR)
        parts.append(body)
        spans.append((kind, at, at + len(body)))
        at += len(body)
    return SEPARATOR.join(parts), spans


def dumps(spans: list[Span]) -> str:
    """A layout as the JSON the store keeps (and post hashes include)."""
    return json.dumps([list(s) for s in spans], separators=(",", ":"))


def stored_spans(text: str, stored: str | None) -> list[Span]:
    """The layout of a stored post: the `blocks` column, or (a post stored before blocks were kept) one
    block per line of its text, classified as text_blocks does."""
    if stored:
        return [(k, int(s), int(e)) for k, s, e in json.loads(stored)]
    spans: list[Span] = []
    for m in re.finditer(r"[^\n]+", text):
        line = m.group()
        if not line.strip():
            continue
        kinds = text_blocks(line)
        kind = kinds[0][0] if kinds else "p"
        start = m.start() + len(line) - len(line.lstrip())
        if kind == "li":  # old text keeps the marker ("• ..."): the block starts after it
            start = m.start() + len(line.rstrip()) - len(kinds[0][1])
        spans.append((kind, start, m.start() + len(line.rstrip())))
    return spans


# -- listing pages ---------------------------------------------------------------------------------

_LISTING_PATH = re.compile(
    r"/(category|categories|tag|tags|topics?|author|authors|archives?|search)/|/page/\d+/?$|"
    r"^/\d{4}/(\d{1,2}/)?(\d{1,2}/)?$", re.IGNORECASE)
TEASERS = 4  # this many heading + short teaser pairs make a page of teasers


def is_listing(url: str, blocks: list[Block], links: int = 0) -> bool:
    """Whether a page lists other posts rather than being one: by its URL (category, tag, author, date,
    search and /page/N pages) or by its shape (TEASERS or more headings each followed by one teaser
    paragraph that trails off, or `links` - distinct post links in teaser headings - of TEASERS or more)."""
    parts = urlsplit(url)
    if _LISTING_PATH.search(parts.path) or re.search(r"(^|&)(s|cat|tag|paged)=", parts.query):
        return True
    if links >= TEASERS:
        return True
    teasers = 0
    for (k1, _), (k2, body) in itertools.pairwise(blocks):
        trails_off = body.endswith(("…", "...", "[…]", "Read more")) or not _FINAL_STOP.search(body)
        teasers += k1 == "h" and k2 == "p" and trails_off
    return teasers >= TEASERS

"""Post text -> sentences -> passages (pure functions).

A passage is a span of the post's stored text: `text == post_text[start:end]` exactly. Passages follow
paragraphs and sentence boundaries, hold roughly MIN_WORDS-MAX_WORDS words, and repeat the previous
passage's last sentence when a paragraph is cut in the middle, so a quote is never lost at a seam.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pbrbot.blocks import Span, looks_like_heading
from pbrbot.models import Passage, content_hash
from pbrbot.sources.clean import CHROME_LINES

MIN_WORDS = 60
TARGET_WORDS = 140
MAX_WORDS = 200

# Words that end with a period without ending the sentence (compared lower-case, without the period).
ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "rev", "hon", "gen", "col", "capt", "lt", "sgt",
    "e.g", "i.e", "eg", "ie", "vs", "v", "cf", "al", "approx", "est", "no", "nos", "vol", "pp", "p",
    "fig", "ch", "co", "ltd", "inc", "plc", "dept", "govt", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k", "ed", "eds", "para", "cllr",
}
_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*$)", re.DOTALL)
_LINE = re.compile(r"[^\n]*\S[^\n]*")
_BULLET = re.compile(r"\s*(?:[•▪◦‣●○■□➢➤►–—-]|\d{1,2}[.)]|[a-z][.)])\s+")
# A candidate sentence end: terminal punctuation, optional closing quotes/brackets, then whitespace.
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+)")
_WORD = re.compile(r"\S+")
_LIST_NUMBER = re.compile(r"\(?(?:\d{1,3}|[ivxlc]{1,5}|[IVXLC]{1,5})")  # "1. Text", "iv. Text": one sentence
_ALNUM = re.compile(r"[A-Za-z0-9]{2,}")


def split_sentences(text: str, blocks: list[Span] | None = None) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of `text`, whitespace trimmed, in order; with `blocks` (the post's
    layout, blocks.py), only inside those blocks, so no sentence crosses one.

    Paragraphs and lines always end a sentence (so a heading or a "•" bullet item stands alone);
    inside a line a sentence ends at . ! ? … (plus closing quotes) followed by whitespace and a
    capital, digit, quote or bullet - except after abbreviations (Mr., e.g., Jan.) and initials.
    Decimal numbers like £8.5m never split because no whitespace follows the point.
    """
    spans: list[tuple[int, int]] = []
    for _, start, end in blocks if blocks is not None else [("p", 0, len(text))]:
        for line in _LINE.finditer(text, start, end):
            spans.extend(_split_line(text, line.start(), line.end()))
    return [_trim(text, s, e) for s, e in spans if text[s:e].strip()]


# Bump when split_sentences or the block rules change: layouts stored before are then split again on reading.
SENTENCES_VERSION = 1


def post_sentences(text: str, blocks: list[Span]) -> tuple[list[tuple[int, int]], list[int]]:
    """A post's sentence spans, each inside one of its `blocks`, and each sentence's block number."""
    spans: list[tuple[int, int]] = []
    numbers: list[int] = []
    for n, block in enumerate(blocks):
        inside = split_sentences(text, [block])
        spans.extend(inside)
        numbers.extend([n] * len(inside))
    return spans, numbers


def dumps_sentences(text: str, blocks: list[Span]) -> str:
    """post_sentences as the JSON the posts table keeps (`sentences`), so an answer need not split the post
    again: [SENTENCES_VERSION, [[start, end, block], ...]]."""
    spans, numbers = post_sentences(text, blocks)
    return json.dumps([SENTENCES_VERSION, [[s, e, n] for (s, e), n in zip(spans, numbers)]],
                      separators=(",", ":"))


def loads_sentences(stored: str | None) -> tuple[list[tuple[int, int]], list[int]] | None:
    """The spans and block numbers of a stored `sentences` value; None when there is none or it was made by
    another version of the splitting rules."""
    if not stored:
        return None
    try:
        version, rows = json.loads(stored)
    except (ValueError, TypeError):
        return None
    if version != SENTENCES_VERSION:
        return None
    return [(int(s), int(e)) for s, e, _ in rows], [int(n) for _, _, n in rows]


def _split_line(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    line = text[start:end]
    cut = 0
    for m in _END.finditer(line):
        after = line[m.end():].lstrip()
        if not after or not _starts_sentence(after):
            continue
        if m.group().startswith(".") and (_is_abbreviation(line[:m.start()])
                                          or _LIST_NUMBER.fullmatch(line[cut:m.start()].strip())):
            continue
        yield start + cut, start + m.end()
        cut = m.end()
    yield start + cut, end


def _starts_sentence(after: str) -> bool:
    first = after[0]
    return first.isupper() or first.isdigit() or first in "\"'“‘(•[£$€" or bool(_BULLET.match(after))


def _is_abbreviation(before: str) -> bool:
    word = before.rsplit(None, 1)[-1] if before.strip() else ""
    word = word.lstrip("(\"'“‘").lower()
    if not word:
        return False
    if word in ABBREVIATIONS:
        return True
    return len(word) == 1 and word.isalpha()  # an initial: "J. Smith"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _is_chrome(text: str) -> bool:
    return text.strip().lower() in CHROME_LINES or not _ALNUM.search(text)


class _Unit:
    """A sentence (or a piece of an over-long one) with the paragraph it belongs to."""

    __slots__ = ("end", "heading", "para", "start", "words")

    def __init__(self, text: str, start: int, end: int, para: int, heading: bool):
        self.start, self.end, self.para, self.heading = start, end, para, heading
        self.words = _words(text[start:end])


def _units(text: str, blocks: list[Span] | None = None) -> list[_Unit]:
    units: list[_Unit] = []
    if blocks is None:
        blocks = [("", m.start(), m.end()) for m in _PARAGRAPH.finditer(text)]
    for para_no, (kind, start, end) in enumerate(blocks):
        spans = split_sentences(text, [(kind, start, end)])
        heading = kind == "h" if kind else \
            len(spans) == 1 and looks_like_heading(text[spans[0][0]:spans[0][1]])
        for s, e in spans:
            if _is_chrome(text[s:e]):
                continue
            for ps, pe in _split_long(text, s, e):
                units.append(_Unit(text, ps, pe, para_no, heading))
    return units


def _split_long(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """A sentence longer than MAX_WORDS (a run-on list, a table) cut at word boundaries."""
    words = list(_WORD.finditer(text, start, end))
    if len(words) <= MAX_WORDS:
        yield start, end
        return
    step = TARGET_WORDS
    for i in range(0, len(words), step):
        chunk = words[i:i + step]
        yield chunk[0].start(), chunk[-1].end()


def chunk_text(text: str, blocks: list[Span] | None = None, teasers: bool = False) -> list[tuple[int, int]]:
    """Passage spans (start, end) of a post's text (its paragraphs, or the given block layout). `teasers`
    (a listing page): each heading starts a new passage, so no passage holds two posts' teasers."""
    units = _units(text, blocks)
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    words = 0
    for unit in units:
        new_para = bool(current) and unit.para != current[-1].para
        full = words + unit.words > MAX_WORDS
        ripe = new_para and words >= TARGET_WORDS and not current[-1].heading
        next_teaser = teasers and unit.heading and bool(current) and not current[-1].heading
        if next_teaser:
            groups.append(current)
            current, words = [], 0
        elif current and (full or ripe):
            carry = _carry(current, mid_paragraph=not new_para)
            groups.append(current)
            current = carry
            words = sum(u.words for u in current)
        current.append(unit)
        words += unit.words
    if current:
        groups.append(current)
    if not teasers:
        groups = _merge_short_tail(groups)
    return [(g[0].start, g[-1].end) for g in groups]


def _carry(group: list[_Unit], mid_paragraph: bool) -> list[_Unit]:
    """What the next passage starts with: trailing headings move over; a cut paragraph repeats a sentence."""
    moved: list[_Unit] = []
    while len(group) > 1 and group[-1].heading:
        moved.insert(0, group.pop())
    if moved:
        return moved
    last = group[-1]
    if mid_paragraph and len(group) > 1 and last.words <= MAX_WORDS // 4:
        return [last]
    return []


def _merge_short_tail(groups: list[list[_Unit]]) -> list[list[_Unit]]:
    if len(groups) < 2:
        return groups
    tail, prev = groups[-1], groups[-2]
    tail_words = sum(u.words for u in tail if u not in prev)
    if tail_words < MIN_WORDS // 2 and sum(u.words for u in prev) + tail_words <= MAX_WORDS * 5 // 4:
        merged = prev + [u for u in tail if u not in prev]
        return groups[:-2] + [merged]
    return groups


def chunk_post(post_id: int, text: str, blocks: list[Span] | None = None,
               teasers: bool = False) -> list[Passage]:
    """A post's passages, in order, each with its offsets and content hash (ids are given by the store);
    `teasers` for a listing page (see chunk_text)."""
    passages = []
    for position, (start, end) in enumerate(chunk_text(text, blocks, teasers)):
        body = text[start:end]
        passages.append(Passage(post_id=post_id, position=position, start=start, end=end,
                                text=body, hash=content_hash(body)))
    return passages

"""Checks of answers against the stored posts' block structure (issue 12): a quote never starts with a
heading or a list marker and never crosses a block; each text-fragment term lies inside one block, the
start term's first match is in the quote's first block and the end term is in its last block."""

from __future__ import annotations

import re

from pbrbot.blocks import stored_spans
from pbrbot.fragments import decode_link

ELLIPSIS = " … "
MARKER = re.compile(r"^(?:[•▪◦‣●○■□➢➤►·*]|[-–—])\s")
_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def _blocks(store, url: str) -> list[tuple[str, str]]:
    row = store.get_post_by_url(url)
    assert row is not None, url
    return [(k, _norm(row["text"][s:e])) for k, s, e in stored_spans(row["text"], row.get("blocks"))]


def _word_in(term: str, block: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(term) + r"(?!\w)", block) is not None


def quote_problems(store, quote: dict) -> list[str]:
    """What is wrong with one quote ({text, url, link}) of an answer; [] when nothing is."""
    blocks = _blocks(store, quote["url"])
    problems: list[str] = []
    segments = [_norm(s) for s in quote["text"].split(ELLIPSIS)]
    if MARKER.match(segments[0]):
        problems.append(f"starts with a list marker: {segments[0][:60]!r}")
    homes = []
    for seg in segments:
        seg = MARKER.sub("", seg)
        home = next((n for n, (_, b) in enumerate(blocks) if seg in b), None)
        if home is None:
            problems.append(f"crosses a block: {seg[:60]!r}")
        homes.append(home)
    if homes[0] is not None and blocks[homes[0]][0] == "h":
        problems.append(f"starts with a heading: {segments[0][:60]!r}")
    start, end = decode_link(quote["link"])
    for name, term in (("start", start), ("end", end)):
        if term is not None and not any(_word_in(_norm(term), b) for _, b in blocks):
            problems.append(f"link {name} term is in no single block: {term!r}")
    first = next((n for n, (_, b) in enumerate(blocks) if _word_in(_norm(start), b)), None)
    if first is not None and homes[0] is not None and first != homes[0]:
        problems.append(f"link start term first matches block {first}, the quote starts in {homes[0]}")
    if end is not None and homes[-1] is not None and not _word_in(_norm(end), blocks[homes[-1]][1]):
        problems.append(f"link end term is not in the quote's last block: {end!r}")
    return problems


def answer_problems(store, answers: list[dict]) -> dict[str, int]:
    """Counts over answers (each `ask --json`): quotes with a heading/marker start or crossing a block,
    links with a term outside any single block, links whose terms do not land on the quote."""
    counts = {"quotes": 0, "quote_start": 0, "quote_crosses": 0, "link_term_crosses": 0, "link_misplaced": 0}
    details: list[str] = []
    for answer in answers:
        for quote in answer.get("quotes", []):
            counts["quotes"] += 1
            found = quote_problems(store, quote)
            details += [f"{answer['question'][:50]}: {p}" for p in found]
            counts["quote_start"] += any(p.startswith("starts with") for p in found)
            counts["quote_crosses"] += any(p.startswith("crosses") for p in found)
            counts["link_term_crosses"] += any("in no single block" in p for p in found)
            counts["link_misplaced"] += any("first matches" in p or "not in the quote's last" in p for p in found)
    counts["details"] = details
    return counts

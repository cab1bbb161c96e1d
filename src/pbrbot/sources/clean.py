"""Removing the blog's site chrome from extracted text. Pure functions, shared by every source."""

from __future__ import annotations

import re

# Lines that are chrome wherever they appear.
CHROME_LINES = {
    "keep up-to-date with drugs and crime",
    "the latest research, policy, practice and opinion on our criminal justice and drug & alcohol "
    "treatment systems",
    "search",
    "share this post",
    "share",
    "subscribe",
    "get every blog post by email for free",
    "all the latest news: best practice interactive tool paradoxes innovation",
    "tweet", "share on facebook", "share on twitter", "share on linkedin", "email", "print",
}
# A line starting one of these ends the article: everything after it is chrome.
CUT_MARKERS = re.compile(
    r"^(related posts|related|leave a reply|leave a comment|\d+ (responses|comments)|comments|"
    r"subscribe|get every blog post by email for free)\s*$",
    re.IGNORECASE,
)
_SPACE = re.compile(r"[ \t\u00a0]+")


def _norm(line: str) -> str:
    return _SPACE.sub(" ", line).strip()


def strip_chrome(text: str, title: str | None = None) -> str:
    """The article text without site chrome: paragraphs kept verbatim, one blank line between them."""
    paragraphs: list[str] = []
    seen: set[str] = set()
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _norm(raw)
        if not line:
            continue
        if CUT_MARKERS.match(line) and paragraphs:
            break
        low = line.lower()
        if low in CHROME_LINES:
            continue
        if title and not paragraphs and low == _norm(title).lower():
            continue  # the page repeats the title above the article
        if low in seen:
            continue  # teaser repeated from the body, or a repeated share block
        seen.add(low)
        paragraphs.append(line)
    return "\n\n".join(paragraphs)

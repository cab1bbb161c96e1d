"""Removing the blog's site chrome from a page's blocks. Pure functions, shared by every source.

Rules are about kinds of chrome, not single pages: the site's masthead and search box, share and subscribe
blocks (everything after "Related posts" / "Leave a reply" / "N comments" is cut), image credits
("Thanks to X for the image"), and self-promotion closing a post ("Browse my resource pack on ...",
"Check out my infographic ...", "Sign up to ...").
"""

from __future__ import annotations

import re

from pbrbot.blocks import Block, clean_line, is_listing, layout
from pbrbot.models import Post

# Lines that are chrome wherever they appear.
CHROME_LINES = {
    "keep up-to-date with drugs and crime",
    ("the latest research, policy, practice and opinion on our criminal justice and drug & alcohol "
     "treatment systems"),
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
    r"^(related posts|related|you may also like|leave a reply|leave a comment|\d+ (responses|comments)|"
    r"comments|subscribe|get every blog post by email for free|share this:?|like this:?|"
    r"explore your areas of interest|"
    r"browse by (category|topic|tag)|recent posts|popular posts)\s*$",
    re.IGNORECASE,
)
# Chrome wherever it stands: image credits and share prompts (short lines only).
CHROME_PATTERN = re.compile(
    r"^((many )?thanks to .{1,80} for (the|this|their|his|her) (use of (the )?)?(image|photo|picture|graphic|"
    r"illustration|cartoon)s?|(image|photo|picture)( credit)?s?:? (by|courtesy of|via) .{1,80}|"
    r"share (this|on) .{1,40}|click to (share|print|email) .{1,60})[.!]?$",
    re.IGNORECASE,
)
# Self-promotion closing a post: only stripped from its end (a post about the pack may say so in its body).
PROMO_PATTERN = re.compile(
    r"^(browse|check out|see|visit|explore|download|read|find) (my|our) .{0,80}"
    r"(resource pack|infographic|toolkit|newsletter|resources|archive|podcast|posts on|tool)\b.{0,100}$|"
    r"^(sign up|subscribe|follow me|follow us|join) .{0,120}$",
    re.IGNORECASE,
)
PROMO_WORDS = 40  # a closing block longer than this is the post's own text


def strip_chrome(blocks: list[Block], title: str | None = None) -> list[Block]:
    """The article's blocks without site chrome, texts verbatim (whitespace collapsed)."""
    out: list[Block] = []
    seen: set[str] = set()
    for kind, raw in blocks:
        line = clean_line(raw)
        if not line:
            continue
        if CUT_MARKERS.match(line) and out:
            break
        low = line.lower()
        if low in CHROME_LINES or CHROME_PATTERN.match(line):
            continue
        if title and not out and low == clean_line(title).lower():
            continue  # the page repeats the title above the article
        if low in seen:
            continue  # teaser repeated from the body, or a repeated share block
        seen.add(low)
        out.append((kind, line))
    while out and len(out[-1][1].split()) <= PROMO_WORDS and PROMO_PATTERN.match(out[-1][1]):
        out.pop()
    return out


def build_post(blocks: list[Block], links: int = 0, **fields) -> Post | None:
    """A Post from a page's blocks and its fields (url, title, date, ...): chrome stripped, the text and its
    block layout, flagged as a listing page when it is one. None when no text is left."""
    kept = strip_chrome(blocks, fields.get("title"))
    text, spans = layout(kept)
    if not text:
        return None
    kind = "listing" if is_listing(fields["url"], kept, links) else "post"
    return Post(text=text, blocks=spans, kind=kind, **fields)

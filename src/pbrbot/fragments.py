"""Text-fragment deep links (WICG scroll-to-text): `URL#:~:text=[prefix-,]textStart[,textEnd]`.

The words of a directive are taken verbatim from the stored post text, so the browser finds them. The
browser matches each term inside one block of the page (a paragraph, heading, list item), so terms are
taken from the quote's first and last blocks. Long quotes use textStart,textEnd (a few words each,
lengthened until they are unambiguous in the post); short ones the whole quote. `-`, `&`, `,` and every
character that is not unreserved are percent-encoded.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

# Unreserved characters minus "-", which the text directive syntax uses (percent-encode it).
_SAFE = "._~"
_SPACE = re.compile(r"\s+")
SHORT_WORDS = 10  # a quote of at most this many words is linked whole
EDGE_WORDS = 4  # the least number of words in textStart / textEnd


def encode_part(text: str) -> str:
    """Percent-encode one directive parameter (UTF-8; everything but letters, digits and `._~`)."""
    # urllib never quotes "-", which the directive syntax reserves: encode it by hand.
    return quote(_SPACE.sub(" ", text).strip(), safe=_SAFE).replace("-", "%2D")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def _page(page: str | list[str] | None) -> str:
    """The post as the browser searches it: its blocks, normalised, one a line (a term never spans one).
    A plain string is taken a line a block."""
    if page is None:
        return ""
    lines = page.split("\n") if isinstance(page, str) else page
    return "\n".join(n for n in (_norm(x) for x in lines) if n)


def _find(page: str, term: str, start: int = 0) -> int:
    """Where the browser finds `term` (normalised) in `page` from `start`: case-insensitive, at word
    boundaries, inside one block. -1 when it does not."""
    m = re.search(r"(?<!\w)" + re.escape(term) + r"(?!\w)", page[start:]) if term else None
    return start + m.start() if m else -1


def directive(segments: list[str], page: str | list[str] | None = None) -> str:
    """The `text=` directive value for a quote made of one or more verbatim segments (cut by ellipses).

    `page` is the post's blocks (texts) or its text (a line a block). With it, textStart is taken from the
    quote's first block and textEnd from its last, each growing until the browser's first match of
    textStart is this quote's start and its first match of textEnd after that is this quote's end.
    """
    segments = [s for s in (_SPACE.sub(" ", s).strip() for s in segments) if s]
    if not segments:
        raise ValueError("a text fragment needs some text")
    first, last = segments[0].split(" "), segments[-1].split(" ")
    joined = _page(page)
    flat = joined.replace("\n", " ")  # same length: finds a segment that runs over blocks
    at = flat.find(_norm(segments[0])) if joined else -1
    tail = flat.find(_norm(segments[-1]), at) if at >= 0 else -1
    if at < 0 or tail < 0:
        joined = ""  # not found as is: fall back to the plain edge words
    # Words of the quote's first block and of its last (a segment may run over blocks).
    head_words = joined[at:at + len(_norm(segments[0]))].split("\n")[0].count(" ") + 1 if joined \
        else len(first)
    tail_words = joined[tail:tail + len(_norm(segments[-1]))].split("\n")[-1].count(" ") + 1 if joined \
        else len(last)
    one_block = len(segments) == 1 and head_words == len(first)
    if one_block and len(first) <= SHORT_WORDS:
        return encode_part(segments[0])
    room = len(first) - 1 if one_block else head_words
    start_n = min(EDGE_WORDS, room)
    while joined and start_n < room and _find(joined, _norm(" ".join(first[:start_n]))) != at:
        start_n += 1
    start_text = " ".join(first[:start_n])
    max_end = len(first) - start_n if one_block else tail_words
    end_n = min(EDGE_WORDS, max_end)
    if joined:
        after = at + len(_norm(start_text))
        quote_end = tail + len(_norm(segments[-1]))
        while end_n < max_end:
            end_text = _norm(" ".join(last[-end_n:]))
            found = _find(joined, end_text, after)
            if found >= 0 and found + len(end_text) == quote_end:
                break
            end_n += 1
    if one_block and start_n + end_n >= len(first):
        return encode_part(segments[0])
    return f"{encode_part(start_text)},{encode_part(' '.join(last[-end_n:]))}"


def fragment_link(url: str, segments: list[str], page: str | list[str] | None = None) -> str:
    """`url` with a text fragment that scrolls to (and highlights) the quote. `page`: the post's block
    texts (PostText.block_texts()), or its text."""
    base = url.split("#", 1)[0]
    return f"{base}#:~:text={directive(segments, page)}"


def decode_link(link: str) -> tuple[str, str | None]:
    """(textStart, textEnd or None) of a link made by fragment_link: the inverse, for checks and tests."""
    _, _, value = link.partition("#:~:text=")
    if not value:
        raise ValueError(f"no text fragment in {link!r}")
    value = value.split("&", 1)[0]
    parts = [p for p in value.split(",") if not (p.endswith("-") or p.startswith("-"))]
    start = unquote(parts[0])
    end = unquote(parts[1]) if len(parts) > 1 else None
    return start, end

"""Text-fragment deep links (WICG scroll-to-text): `URL#:~:text=[prefix-,]textStart[,textEnd]`.

The words of a directive are taken verbatim from the stored post text, so the browser finds them. Long
quotes use textStart,textEnd (a few words each, lengthened until they are unambiguous in the post); short
ones the whole quote. `-`, `&`, `,` and every character that is not unreserved are percent-encoded.
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


def directive(segments: list[str], post_text: str | None = None) -> str:
    """The `text=` directive value for a quote made of one or more verbatim segments (cut by ellipses).

    With `post_text`, the edge words grow until textStart is the first match in the post and textEnd the
    first match after it (that is how the browser matches), so the link highlights this very quote.
    """
    segments = [s for s in (_SPACE.sub(" ", s).strip() for s in segments) if s]
    if not segments:
        raise ValueError("a text fragment needs some text")
    first, last = segments[0].split(" "), segments[-1].split(" ")
    if len(segments) == 1 and len(first) <= SHORT_WORDS:
        return encode_part(segments[0])
    page = _norm(post_text) if post_text else ""
    at = page.find(_norm(segments[0])) if page else -1
    tail = page.find(_norm(segments[-1]), at) if at >= 0 else -1
    if at < 0 or tail < 0:
        page = ""  # not found as is: fall back to the plain edge words
    room = len(first) if len(segments) > 1 else len(first) - 1
    start_n = min(EDGE_WORDS, room)
    while page and start_n < room and page.find(_norm(" ".join(first[:start_n]))) != at:
        start_n += 1
    start_text = " ".join(first[:start_n])
    max_end = len(last) if len(segments) > 1 else len(first) - start_n
    end_n = min(EDGE_WORDS, max_end)
    if page:
        after = at + len(_norm(start_text))
        quote_end = tail + len(_norm(segments[-1]))
        while end_n < max_end:
            end_text = _norm(" ".join(last[-end_n:]))
            if page.find(end_text, after) + len(end_text) == quote_end:
                break
            end_n += 1
    if len(segments) == 1 and start_n + end_n >= len(first):
        return encode_part(segments[0])
    return f"{encode_part(start_text)},{encode_part(' '.join(last[-end_n:]))}"


def fragment_link(url: str, segments: list[str], post_text: str | None = None) -> str:
    """`url` with a text fragment that scrolls to (and highlights) the quote."""
    base = url.split("#", 1)[0]
    return f"{base}#:~:text={directive(segments, post_text)}"


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

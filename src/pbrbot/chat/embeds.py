"""Answers, search results and stats as Discord embeds (pure: no I/O, no client).

Everything fits Discord's limits; long text is trimmed at a sentence boundary (else a word), never inside a
link. Plain text from users and posts (questions, titles, quotes, snippets, tags) goes through `neutralize`:
anything that could ping (@everyone, @here, <@id>, <@!id>, <@&id>) and every masked link `[text](url)` gets a
zero-width space, so it shows as typed and does nothing. Messages are also always sent with
`discord.AllowedMentions.none()`: two independent guards against pings.
"""

from __future__ import annotations

import re

import discord

from pbrbot.models import Answer, Quote
from pbrbot.timeframe import show_date

CONTENT = 2000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
TOTAL = 6000
COLOUR = discord.Colour(0x2B6CB0)
ZWSP = "\u200b"
ELLIPSIS = "…"
DEFINE_PREFIX = "Define: "

_PING = re.compile(r"@(?=everyone|here)|<@(?=[!&]?\d)")
_LINK = re.compile(r"\[[^\]\n]*\]\([^)\s]*\)|<?https?://[^\s>]+>?")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)|\n")
_SOURCE_LINE = re.compile(r"^— \*\*\[(?P<title>[^\]\n]*)\]\((?P<link>[^)\s]+)\)\*\*", re.MULTILINE)


def neutralize(text: str | None) -> str:
    """Plain text made inert for posting: it pings nobody (a zero-width space after the @ of
    @everyone/@here/<@...>) and links nowhere (one between the `]` and `(` of a masked link, which Discord
    only renders when they touch; the text shows as typed, and a bare URL still shows where it goes).

    discord.utils.escape_markdown (2.7) was measured and is not enough here: its link pattern is greedy,
    so in "[a](u) and [b](v)" only the first link is escaped and the second stays live."""
    return _no_pings(text).replace("](", "]" + ZWSP + "(")


def _no_pings(text: str | None) -> str:
    return _PING.sub(lambda m: m.group(0) + ZWSP, text or "")


def trim(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters: at the last sentence end that keeps at least half the room,
    else at a word; never inside a markdown link or URL; an ellipsis marks the cut."""
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    links = [m.span() for m in _LINK.finditer(text)]

    def safe(pos: int) -> int:  # move a cut that falls inside a link to before the link
        for start, end in links:
            if start < pos < end:
                return start
        return pos

    cut = 0
    for m in _SENTENCE_END.finditer(text, 0, room):
        if safe(m.end()) == m.end():
            cut = m.end()
    if cut < room // 2:
        space = max(text.rfind(" ", 0, room + 1), text.rfind("\n", 0, room + 1))
        cut = safe(space if space > room // 4 else room)
    return text[:cut].rstrip() + ELLIPSIS


def pretty_date(value: str | None) -> str:
    """"4 March 2013"; an estimated date (EDTF "2013-03~") as "c. March 2013" (timeframe.show_date)."""
    return show_date(value)


def link(text: str, url: str) -> str:
    """A markdown link whose text and URL cannot break the markdown (or ping)."""
    text = neutralize(text).replace("[", "(").replace("]", ")").replace("\n", " ").strip() or url
    for char, code in (("(", "%28"), (")", "%29"), (" ", "%20"), ("<", "%3C"), (">", "%3E")):
        url = url.replace(char, code)
    return f"[{trim(text, 200)}]({url})"


def source_line(title: str, url: str, when: str | None, label: str | None = None) -> str:
    """The quote's linked title and date, or its label ("Newer: 26 May 2016") when it has one."""
    line = f"— **{link(title, url)}**"
    if label:
        return f"{line} · **{neutralize(label)}**"
    return f"{line} · {pretty_date(when)}" if when else line


def quote_block(quote: Quote, text_limit: int) -> str:
    """The quote as a block quote (text trimmed to `text_limit`) over its linked title and date."""
    text = trim(neutralize(quote.text).strip(), max(text_limit, 40))
    body = "\n".join("> " + line for line in text.splitlines() if line.strip())
    source = source_line(quote.title, quote.link, quote.date, quote.label)
    if len(source) > DESCRIPTION // 3:  # an extreme text-fragment link: link the post itself
        source = source_line(quote.title, quote.url, quote.date, quote.label)
    return f"{body}\n{source}"


def quotes_description(quotes: list[Quote], limit: int = DESCRIPTION) -> str:
    """Quote blocks separated by blank lines, each trimmed evenly so the whole fits in `limit`."""
    if not quotes:
        return ""
    share = limit // len(quotes)
    while True:
        text = "\n\n".join(quote_block(q, share - len(source_line(q.title, q.link, q.date)) - 40)
                           for q in quotes)
        if len(text) <= limit or share < 100:
            return text[:limit] if len(text) > limit else text
        share = int(share * 0.9)


def _base(title: str, description: str = "", footer: str | None = None) -> discord.Embed:
    embed = discord.Embed(title=trim(neutralize(title), TITLE), description=trim(description, DESCRIPTION),
                          colour=COLOUR)
    if footer:
        embed.set_footer(text=trim(neutralize(footer), FOOTER))
    return embed


def answer_title(answer: Answer) -> str:
    return DEFINE_PREFIX + answer.term if answer.term else answer.question


def answer_embed(answer: Answer, start: int = 0) -> discord.Embed:
    """The answer's quotes from `start` (the "More" button shows the next ones); not-found answers say so
    and list the related posts."""
    gloss = f"**Glossary:** {trim(neutralize(answer.gloss), 600)}\n\n" if answer.gloss and start == 0 else ""
    if answer.glosses and start == 0:  # what the question asks a term to mean: the glossary's own words
        gloss = "".join(f"**Glossary, {trim(neutralize(g.term), 80)}:** {trim(neutralize(g.gloss), 400)}\n"
                        for g in answer.glosses[:4]) + "\n"
    if answer.term and answer.gloss and not answer.quotes:
        return _base(answer_title(answer), gloss + "No post in the archive explains it.")
    if not answer.found or not answer.quotes:
        lines = [(f"I couldn't find this in the russellwebster.com archive: no post answers "
                  f"“{trim(neutralize(answer.question), 300)}”.")]
        if answer.read_chars:
            lines.append(f"*{answer.read_note()}*")
        if answer.related:
            lines.append("\nThese posts may be related:")
            lines += [f"• {link(r.title, r.url)}" for r in answer.related]
        return _base("Not in the archive", gloss + _join_fitting(lines, DESCRIPTION - len(gloss)))
    quotes = answer.quotes[start:]
    shown = f"quote {start + 1}" if len(quotes) == 1 else f"quotes {start + 1}–{start + len(quotes)}"
    head = gloss + understood(answer)
    return _base(answer_title(answer), head + quotes_description(quotes, DESCRIPTION - len(head)),
                 f"From the russellwebster.com archive · {shown}")


TAKEN_AS = "Taken as: "
_TAKEN_AS = re.compile(r"^\*" + TAKEN_AS + r"(?P<q>[^\n]*)\*$", re.MULTILINE)


def understood(answer: Answer) -> str:
    """The lines over an answer's quotes saying how a follow-up was read and which period it is from."""
    lines = []
    note = answer.read_note()
    if note:
        lines.append(f"*{note}*")
    if answer.taken_as:
        lines.append(f"*{TAKEN_AS}{trim(neutralize(answer.taken_as).replace('*', ''), 300)}*")
    if answer.period:
        lines.append(f"*{neutralize(answer.period)}*")
    return "\n".join(lines) + "\n\n" if lines else ""


def taken_as_in(embed: dict) -> str | None:
    """The "Taken as" question shown in an answer embed (as sent), else None."""
    m = _TAKEN_AS.search((embed.get("description") or "").replace(ZWSP, ""))
    return m["q"] if m else None


def post_list_embed(title: str, posts: list[dict], empty: str = "Nothing found.") -> discord.Embed:
    """A numbered list of posts ({title, url, date, snippet?}) with links, as many as fit."""
    lines = []
    for i, post in enumerate(posts, 1):
        line = f"**{i}.** {link(post['title'], post['url'])}"
        if post.get("date"):
            line += f" · {pretty_date(post['date'])}"
        if post.get("snippet"):
            line += "\n> " + trim(neutralize(" ".join(post["snippet"].split())), 200)
        lines.append(line)
    return _base(title, _join_fitting(lines, DESCRIPTION) if lines else empty)


def fields_embed(title: str, fields: dict[str, str], description: str = "") -> discord.Embed:
    """An embed of name/value fields: at most 25, each trimmed, as many as fit in the 6,000 total. The
    values are markdown (they may hold links made by `link`): plain text in them must be neutralized by
    the caller; only pings are neutralized here."""
    embed = _base(title, description)
    for name, value in list(fields.items())[:FIELDS]:
        name, value = trim(neutralize(name), FIELD_NAME), trim(_no_pings(value) or "—", FIELD_VALUE)
        if len(embed) + len(name) + len(value) > TOTAL:
            break
        embed.add_field(name=name, value=value, inline=False)
    return embed


def _join_fitting(lines: list[str], limit: int, sep: str = "\n") -> str:
    """Whole lines, in order, as many as fit in `limit` (the first one trimmed if it alone is too long)."""
    out: list[str] = []
    size = 0
    for line in lines:
        extra = len(line) + (len(sep) if out else 0)
        if size + extra > limit:
            if not out:
                out.append(trim(line, limit))
            break
        out.append(line)
        size += extra
    return sep.join(out)


def fits(embed: discord.Embed) -> bool:
    """Within every per-embed limit and the 6,000-character total."""
    data = embed.to_dict()
    fields = data.get("fields", [])
    return (len(data.get("title", "")) <= TITLE and len(data.get("description", "")) <= DESCRIPTION
            and len(fields) <= FIELDS and len(embed) <= TOTAL
            and all(len(f["name"]) <= FIELD_NAME and len(f["value"]) <= FIELD_VALUE for f in fields)
            and len(data.get("footer", {}).get("text", "")) <= FOOTER)


def embed_of(message: discord.Message | None, strict: bool = False) -> dict:
    """The message's answer embed as a dict ({} when it has none; IndexError when `strict`)."""
    if message is None or not message.embeds:
        if strict:
            raise IndexError("the message has no answer embed")
        return {}
    return dict(message.embeds[0].to_dict())


def quotes_in(embed: dict) -> list[dict]:
    """The quotes ({title, link}) shown in an answer embed (as sent): the inverse of `quote_block`."""
    return [{"title": m["title"].replace(ZWSP, ""), "link": m["link"]}
            for m in _SOURCE_LINE.finditer(embed.get("description") or "")]


def question_in(embed: dict) -> tuple[str, str]:
    """("ask", question) or ("define", term) from an answer embed's title."""
    title = (embed.get("title") or "").replace(ZWSP, "")
    if title.startswith(DEFINE_PREFIX):
        return "define", title[len(DEFINE_PREFIX):]
    return "ask", title

"""The nouns of the data flow: Post -> Passage -> Hit -> Quote -> Answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from pbrbot.blocks import dumps


def content_hash(*parts: str | None) -> str:
    """A short, stable hash of text parts (used for posts and passages)."""
    h = hashlib.sha256()
    for part in parts:
        h.update((part or "").encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:32]


class Post(BaseModel):
    """One blog post as read from a source, before it is stored."""

    url: str
    title: str
    text: str
    date: str | None = None  # ISO 8601 date (YYYY-MM-DD) or None when unknown
    modified: str | None = None  # ISO 8601 timestamp
    author: str | None = None
    tags: list[str] = Field(default_factory=list)
    guid: str | None = None  # the source's own id: WordPress post id, feed GUID, ...
    source: str = ""  # where it came from: a file path or URL
    # The block layout of `text` (see blocks.py): (kind, start, end) per block; empty when not known.
    blocks: list[tuple[str, int, int]] = Field(default_factory=list)
    kind: str = "post"  # or "listing": a page of teasers of other posts, kept but never searched or quoted

    @property
    def hash(self) -> str:
        return content_hash(self.title, self.text, self.date, self.author, ",".join(self.tags),
                            dumps(self.blocks) if self.blocks else "",
                            "" if self.kind == "post" else self.kind)


@dataclass(frozen=True)
class Skip:
    """An input that could not be read: reported, never fatal."""

    source: str
    where: str  # "line 7", "entry 12 (guid ...)", "page 3", a file name
    reason: str

    def as_dict(self) -> dict:
        return {"source": self.source, "where": self.where, "reason": self.reason}


@dataclass(frozen=True)
class Kept(Skip):
    """A post that was stored, with something of it left out (e.g. an unreadable optional date): a warning.
    Sources yield it just before the post."""


@dataclass(frozen=True)
class Passage:
    """A span of a post's text: the unit that is embedded and keyword-indexed."""

    post_id: int
    position: int
    start: int  # character offsets into the post's stored text
    end: int
    text: str
    hash: str
    id: int | None = None


@dataclass
class Hit:
    """A passage returned by search, with where it ranked in each half of the hybrid."""

    passage_id: int
    post_id: int
    url: str
    title: str
    date: str | None
    text: str
    start: int
    end: int
    score: float
    dense_rank: int | None = None
    keyword_rank: int | None = None
    dense_score: float | None = None
    extra: dict = field(default_factory=dict)


class Quote(BaseModel):
    text: str
    url: str
    link: str  # url + text fragment that scrolls to the quote
    title: str
    date: str | None  # ISO day, or EDTF approximate ("2013-03~"): see timeframe.show_date
    score: float
    # The passages the quote came from, in order (for feedback); internal, not in the JSON output.
    passage_ids: list[int] = Field(default_factory=list, exclude=True)
    label: str | None = None  # e.g. "Newer (26 May 2016)" when quoted posts differ over time on a point


class Gloss(BaseModel):
    """A glossary term a question asks the meaning of, with the glossary's own explanation (not a quote)."""
    term: str
    gloss: str


class Related(BaseModel):
    url: str
    title: str


class Answer(BaseModel):
    """The JSON contract of `ask --json` and `define --json` (define adds `term` and `gloss`: the glossary's
    own explanation, not a quote)."""

    question: str
    found: bool
    quotes: list[Quote] = Field(default_factory=list)
    related: list[Related] = Field(default_factory=list)
    term: str | None = None
    gloss: str | None = None
    taken_as: str | None = None  # the question as understood, when earlier turns changed it (followups.py)
    period: str | None = None  # the period the answer is drawn from, "Posts from 2013" (timeframe.py)
    glosses: list[Gloss] = Field(default_factory=list)  # terms the question asks the meaning of (ask only)
    # set when the question was longer than pbrbot reads: only its first read_chars characters were read
    read_chars: int | None = None

    def read_note(self) -> str | None:
        """What to tell the asker when only part of the question was read, else None."""
        return (f"Only the first {self.read_chars:,} characters of the question were read."
                if self.read_chars else None)

    def passage_ids(self) -> list[int]:
        """The first passage of each quote (those that have one), in order."""
        return [q.passage_ids[0] for q in self.quotes if q.passage_ids]

    def to_json_dict(self) -> dict:
        data = self.model_dump(exclude_none=False, exclude={"term", "gloss"} if self.term is None else set())
        for name in ("taken_as", "period", "glosses", "read_chars"):
            if not data.get(name):
                data.pop(name, None)
        for quote in data["quotes"]:
            if quote.get("label") is None:
                quote.pop("label", None)
        return data

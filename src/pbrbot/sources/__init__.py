"""Sources: each module turns one kind of input into Posts (and Skips for what it could not read).

A source module exposes:
    detect(spec: str) -> bool            does this module read this spec (path or URL)?
    read(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]
Modules are asked in the order of SOURCE_MODULES; the first that detects the spec reads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pbrbot.config import Settings
from pbrbot.errors import PbrbotError
from pbrbot.models import Post, Skip

if TYPE_CHECKING:
    from pbrbot.store import Store

# Order matters: the most specific detectors first.
SOURCE_MODULES = ["dumps", "jsonl", "wxr", "feed", "html", "wordpress"]


@dataclass
class SourceContext:
    settings: Settings
    store: Store | None = None  # for incremental state (meta table)
    progress: Callable[[int, int | None], None] = field(default=lambda done, total: None)


class SourceError(PbrbotError):
    """A whole source could not be read (not found, unreachable, unknown format)."""


def find_reader(spec: str):
    for name in SOURCE_MODULES:
        module = importlib.import_module(f"pbrbot.sources.{name}")
        if module.detect(spec):
            return module
    raise SourceError(
        f"don't know how to read {spec!r}: give a WordPress site or feed URL, a WXR/RSS/Atom .xml, "
        "a .jsonl file, an .html file or folder, or a folder of text dumps with manifest.json"
    )


def read_source(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]:
    yield from find_reader(spec).read(spec, ctx)

"""A folder of plain-text page dumps with a manifest.json of {file, url, title, date} per file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pbrbot.blocks import text_blocks
from pbrbot.models import Post, Skip
from pbrbot.sources import SourceContext, SourceError
from pbrbot.sources.clean import build_post
from pbrbot.sources.dates import parse_date


def detect(spec: str) -> bool:
    return Path(spec).is_dir() and (Path(spec) / "manifest.json").is_file()


def read(spec: str, ctx: SourceContext) -> Iterator[Post | Skip]:
    folder = Path(spec)
    manifest_path = folder / "manifest.json"
    try:
        entries = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{manifest_path}: not a readable JSON manifest ({exc})") from None
    if not isinstance(entries, list):
        raise SourceError(f"{manifest_path}: expected a JSON list of {{file, url, title, date}}")
    for number, entry in enumerate(entries, start=1):
        where = f"manifest entry {number}"
        if not isinstance(entry, dict) or not all(entry.get(k) for k in ("file", "url", "title")):
            yield Skip(str(manifest_path), where, "entry needs file, url and title")
            continue
        path = folder / entry["file"]
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            yield Skip(str(path), where, f"cannot read file: {exc}")
            continue
        post = build_post(
            text_blocks(raw), url=entry["url"], title=entry["title"], date=parse_date(entry.get("date")),
            author=entry.get("author"), tags=list(entry.get("tags") or []),
            guid=entry.get("guid"), source=str(path),
        )
        yield post if post is not None else Skip(str(path), where, "no text left after removing site chrome")
        ctx.progress(number, len(entries))

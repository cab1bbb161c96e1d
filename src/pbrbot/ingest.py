"""Sources -> clean posts -> store. Counts what happened and why anything was skipped."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pbrbot.config import Settings
from pbrbot.models import Kept, Post, Skip
from pbrbot.sources import SourceContext, read_source
from pbrbot.sources.sample import sample_dir
from pbrbot.store import Store

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[Skip] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # whole sources that could not be read
    warnings: list[Skip] = field(default_factory=list)  # posts kept, with something left out (a bad date)
    new_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)
    listings: int = 0  # of the posts read, listing pages (stored, never searched or quoted)

    @property
    def read(self) -> int:
        return self.new + self.updated + self.unchanged

    def summary(self) -> str:
        listings = (f"; {self.listings} listing page{'s' * (self.listings != 1)} (category, tag, archive: "
                    "each teaser quoted on its own)" if self.listings else "")
        return (f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged, "
                f"{len(self.skipped)} skipped" + (f", {len(self.warnings)} warnings" if self.warnings else "")
                + listings)

    def as_dict(self) -> dict:
        return {"new": self.new, "updated": self.updated, "unchanged": self.unchanged,
                "listings": self.listings,
                "skipped": [s.as_dict() for s in self.skipped], "errors": self.errors,
                "warnings": [w.as_dict() for w in self.warnings]}


def store_items(store: Store, items: Iterable[Post | Skip | Kept], report: IngestReport,
                on_item: Callable[[Post | Skip], None] | None = None) -> IngestReport:
    """Store each post as it arrives (each in its own transaction: an interrupted run keeps what it
    stored)."""
    for item in items:
        if isinstance(item, Kept):
            log.info("kept %s (%s): %s", item.source, item.where, item.reason)
            report.warnings.append(item)
            continue
        if isinstance(item, Skip):
            log.info("skipped %s (%s): %s", item.source, item.where, item.reason)
            report.skipped.append(item)
        else:
            status, post_id = store.upsert_post(item)
            report.listings += item.kind == "listing"
            setattr(report, status, getattr(report, status) + 1)
            if status == "new":
                report.new_ids.append(post_id)
            elif status == "updated":
                report.updated_ids.append(post_id)
        if on_item:
            on_item(item)
    return report


def ingest(store: Store, settings: Settings, specs: Iterable[str],
           on_item: Callable[[Post | Skip], None] | None = None,
           progress: Callable[[int, int | None], None] | None = None) -> IngestReport:
    """Read every source spec into the store. A source that fails as a whole is reported, the rest go on."""
    from pbrbot.errors import PbrbotError

    report = IngestReport()
    for spec in specs:
        ctx = SourceContext(settings=settings, store=store, progress=progress or (lambda done, total: None))
        try:
            store_items(store, read_source(spec, ctx), report, on_item)
        except PbrbotError as exc:
            log.info("source failed: %s", exc)
            report.errors.append(str(exc))
    return report


def ingest_sample(store: Store, settings: Settings,
                  on_item: Callable[[Post | Skip], None] | None = None) -> IngestReport:
    return ingest(store, settings, [str(sample_dir())], on_item=on_item)

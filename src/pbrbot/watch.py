"""One poll of the blog: fetch PBRBOT_FEED_URL through the sources, store, index, queue the new posts.

The sources do the conditional requests (ETag / If-Modified-Since kept in the meta table), so an
unchanged feed costs one 304. The watcher's own state is in meta too (`watch.*`): the poll in progress
(when it started), last poll, last success, last error, consecutive failures and the next poll time,
with exponential backoff and jitter after failures. A poll never raises: every failure is logged and
recorded for /alerts status, and posts stored by a half-failed poll are still indexed and announced
(nothing is lost). A poll still running at PBRBOT_POLL_DEADLINE is recorded as failed by whoever runs it
(`record_abandoned`); when it ends it records its own result.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pbrbot import alerts
from pbrbot.config import Settings
from pbrbot.errors import ConfigError
from pbrbot.ingest import ingest
from pbrbot.passages import count_stale
from pbrbot.store import Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 6 * 3600.0  # seconds: the longest wait between polls after repeated failures
_KEYS = ("polling", "last_poll", "last_ok", "last_error", "failures", "next_poll", "feed_url")


@dataclass
class PollResult:
    ok: bool
    new: int = 0
    updated: int = 0
    error: str | None = None
    queued: list[int] = field(default_factory=list)  # post ids queued for announcement, in order
    next_poll: float = 0.0  # epoch seconds


def feed_url(settings: Settings, override: str | None = None) -> str:
    url = override or settings.feed_url
    if not url:
        raise ConfigError("nothing to watch: set PBRBOT_FEED_URL to the blog's site or feed URL "
                          "(or pass --feed)")
    return url


def backoff_delay(poll_seconds: float, failures: int, rand=random.random) -> float:
    """The wait before the next poll: the poll interval, doubled per consecutive failure, with ±20% jitter."""
    if failures <= 0:
        return poll_seconds
    delay = min(poll_seconds * 2 ** min(failures, 20), max(MAX_BACKOFF, poll_seconds))
    return delay * (0.8 + 0.4 * rand())


def poll(store: Store, settings: Settings, index: Callable[[], object], url: str | None = None,
         target: str = alerts.DISCORD, backfill: int = 0, now: float | None = None) -> PollResult:
    """Fetch, store and `index` new posts, then queue them for `target`'s channels. Never raises
    (except ConfigError for a missing feed URL, which no retry can fix)."""
    url = feed_url(settings, url)
    now = time.time() if now is None else now
    result = PollResult(ok=False)
    problems: list[str] = []
    alerts.start_watching(store, target)  # the first attempt's time, kept: see alerts.queue_new_posts
    store.set_meta("watch.polling", _iso(time.time()))
    try:
        report = ingest(store, settings, [url])
        alerts.crash_point("after_ingest")
        result.new, result.updated = len(report.new_ids), len(report.updated_ids)
        problems += report.errors
        problems += [f"{s.source}: {s.reason}" for s in report.skipped if s.where == "document"]
        if report.new_ids or report.updated_ids or count_stale(store):
            index()  # indexed BEFORE announced: askable at once
        indexed = True
    except Exception as exc:  # the loop must survive anything: log it, record it, try again later
        log.exception("poll of %s failed", url)
        problems.append(_one_line(exc))
        indexed = False
    result.ok = not problems
    result.error = "; ".join(problems) or None
    if indexed and (result.ok or alerts.watermark(store, target) is not None):
        # the very first watermark is set only after a clean poll, so a failing first poll can't
        # turn the blog's whole feed into "new" posts later
        result.queued = alerts.queue_new_posts(store, target, backfill=backfill)
    result.next_poll = _record(store, settings, url, now, result.error, {"polling": None})
    return result


def record_abandoned(store, settings, url: str, started: float, now: float | None = None) -> None:
    """A poll still running at the deadline: a failure for /alerts status (and the backoff). The poll
    runs on and records its own result when it ends."""
    now = time.time() if now is None else now
    _record(store, settings, url, now, f"the poll was still running after {now - started:.0f} s "
            "(PBRBOT_POLL_DEADLINE): abandoned; it records its own result if it ever ends")


def _record(store, settings, url: str, now: float, error: str | None, extra: dict | None = None) -> float:
    """Write a poll's outcome (one statement: /alerts status sees one poll); returns the next poll time."""
    failures = 0 if error is None else int(store.get_meta("watch.failures") or 0) + 1
    next_poll = now + backoff_delay(settings.poll_minutes * 60, failures)
    state = {"last_poll": _iso(now), "failures": str(failures), "next_poll": _iso(next_poll), "feed_url": url,
             **(extra or {})}
    if error is None:
        state["last_ok"] = _iso(now)
    else:
        state["last_error"] = f"{_iso(now)} {error}"
        log.warning("poll of %s failed (%d in a row; next try %s): %s",
                    url, failures, state["next_poll"], error)
    store.set_metas({f"watch.{key}": value for key, value in state.items()})
    return next_poll


def status(store) -> dict:
    """What /alerts status shows: the watcher's state, delivery counts and broken subscriptions."""
    values = store.get_metas([f"watch.{key}" for key in _KEYS])
    out = {key: values[f"watch.{key}"] for key in _KEYS}
    out["failures"] = int(out["failures"] or 0)
    out["deliveries"] = alerts.counts(store)
    out["broken"] = [s for s in alerts.subscriptions(store) if s["broken"]]
    return out


def seconds_until_next_poll(store, now: float | None = None) -> float:
    value = store.get_meta("watch.next_poll")
    if not value:
        return 0.0
    now = time.time() if now is None else now
    return max(0.0, datetime.fromisoformat(value).timestamp() - now)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"

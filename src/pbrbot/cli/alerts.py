"""CLI commands: watch (new-article alerts without Discord, for cron and tests)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import click

from pbrbot import alerts, watch
from pbrbot.cli.exits import PARTLY_DONE, fail


class _PrintSender:
    """The `cli` target: an alert is a line on stdout. Printed, then marked announced."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    async def find_sent(self, d: alerts.Delivery) -> int | None:
        return None  # stdout keeps no record: a crash between print and mark prints it again

    async def send(self, d: alerts.Delivery) -> int | None:
        post = d.post
        if self.as_json:
            click.echo(json.dumps({"url": post["url"], "title": post["title"], "date": post["date"]},
                                  ensure_ascii=False))
        else:
            click.echo(f"new: {post['title']} ({post['date'] or 'undated'}) {post['url']}")
        return None


@click.command("watch")
@click.option("--once", is_flag=True,
              help="Poll once and exit (for cron); default: poll every PBRBOT_POLL_MINUTES.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line {url, title, date} per new post.")
@click.option("--feed", "feed", default=None, help="Site or feed URL to watch (default: $PBRBOT_FEED_URL).")
@click.option("--backfill", type=click.IntRange(min=0), default=0,
              help="On the first run, announce the N newest posts (default: none, no flood).")
@click.pass_obj
def watch_cmd(services, once: bool, as_json: bool, feed: str | None, backfill: int) -> None:
    """Watch the blog: store and index each new post, then print it, once.

    The first run against an existing archive prints nothing (unless --backfill N); later runs print
    each post that appeared since, exactly once. Feed failures are retried with backoff.
    """
    url = watch.feed_url(services.settings, feed)
    sender = _PrintSender(as_json)
    # A failed poll is reported here, once: not also as the poller's log warning (still in -v's log).
    poller_log = logging.getLogger(watch.__name__)
    if poller_log.getEffectiveLevel() >= logging.WARNING:
        poller_log.setLevel(logging.ERROR)
    while True:
        result = watch.poll(services.store, services.settings, lambda: services.run_index(progress=False),
                            url, target=alerts.CLI, backfill=backfill)
        asyncio.run(alerts.deliver_pending(services.store, sender, target=alerts.CLI))
        if once:
            if result.error:
                fail(result.error, PARTLY_DONE if result.new or result.updated else 1)
            break
        if result.error:
            click.echo(f"warning: {result.error}", err=True)
        backfill = 0
        time.sleep(watch.seconds_until_next_poll(services.store))


COMMANDS = [watch_cmd]

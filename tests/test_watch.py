"""The watcher against a local fake blog: `pbrbot watch --once --json`, conditional requests, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from conftest import make_services
from fakeblog import FakeBlog

from pbrbot import alerts, watch
from pbrbot.cli import main
from pbrbot.store import Store


@pytest.fixture
def blog():
    with FakeBlog(hang_seconds=1.0) as b:
        b.add_posts(3)
        yield b


@pytest.fixture(autouse=True)
def _fast_settings(monkeypatch):
    monkeypatch.setenv("PBRBOT_MODEL", "fake:64")  # plumbing: the real model is used in test_alerts_e2e
    monkeypatch.setenv("PBRBOT_HTTP_RETRIES", "1")
    monkeypatch.setenv("PBRBOT_HTTP_TIMEOUT", "0.5")


def run_watch(tmp_path, url, *args, code=0):
    """The posts `watch --once --json` announces; `code` 1 when the poll is meant to fail."""
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), "watch", "--once", "--json",
                                       "--feed", url, *args])
    assert result.exit_code == code, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("kind", ["site", "feed"])
def test_watch_once_json_prints_each_new_post_once(tmp_path, blog, kind):
    url = blog.url if kind == "site" else blog.feed_url
    assert run_watch(tmp_path, url) == []  # first run: the existing posts are not news
    post = blog.add_post("Probation reunification: the new plan", date="2024-06-01T08:00:00")
    assert run_watch(tmp_path, url) == [{"url": post["link"], "title": "Probation reunification: the new plan",
                                         "date": "2024-06-01"}]
    assert run_watch(tmp_path, url) == []
    if kind == "feed":  # the unchanged feed was asked for conditionally and answered 304
        assert blog.requests_to("/feed/")[-1].headers.get("If-None-Match")


def test_edit_is_not_announced_and_new_posts_come_in_date_order(tmp_path, blog):
    run_watch(tmp_path, blog.url)
    blog.edit_post(1, title="Post 1 (corrected)", text="A corrected text about payment by results.")
    assert run_watch(tmp_path, blog.url) == []
    later = blog.add_post("Later post", date="2024-07-02T08:00:00")
    earlier = blog.add_post("Earlier post", date="2024-07-01T08:00:00")
    assert [p["url"] for p in run_watch(tmp_path, blog.url)] == [earlier["link"], later["link"]]


def test_backfill_on_first_run(tmp_path, blog):
    assert [p["title"] for p in run_watch(tmp_path, blog.url, "--backfill", "2")] == ["Post 2", "Post 3"]
    assert run_watch(tmp_path, blog.url) == []


def test_missing_feed_url_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "watch", "--once"])
    assert result.exit_code == 2 and "PBRBOT_FEED_URL" in result.stderr


@pytest.mark.parametrize("failures, low, high", [(0, 60, 60), (1, 96, 144), (3, 384, 576), (30, 17280, 25920)])
def test_backoff_grows_with_jitter_and_is_capped(failures, low, high):
    delays = [watch.backoff_delay(60, failures, rand=lambda r=r: r) for r in (0.0, 0.5, 0.999)]
    assert low <= min(delays) and max(delays) <= high


def test_feed_failures_are_recorded_backed_off_and_nothing_is_lost(tmp_path, blog):
    svc = make_services(tmp_path / "data", poll_minutes=1)
    try:
        url = blog.feed_url
        assert watch.poll(svc.store, svc.settings, lambda: svc.run_index(progress=False), url, target=alerts.CLI, now=1000).ok
        batch = blog.add_posts(8)  # the truncated document loses half of them: the next poll must not 304
        faults = [(500, None), ("hang", None), ("truncate", "/feed/"), (404, None)]
        for n, (kind, path) in enumerate(faults, start=1):
            blog.fail_next(kind, path=path)
            result = watch.poll(svc.store, svc.settings, lambda: svc.run_index(progress=False), url, target=alerts.CLI, now=1000)
            assert not result.ok and result.error, kind
            status = watch.status(svc.store)
            assert status["failures"] == n and status["last_error"]
            assert result.next_poll - 1000 >= 60 * 2 ** n * 0.8  # exponential backoff
        second = blog.add_post("Published during the outage", date="2024-06-02T08:00:00")
        result = watch.poll(svc.store, svc.settings, lambda: svc.run_index(progress=False), url, target=alerts.CLI, now=2000)
        assert result.ok and watch.status(svc.store)["failures"] == 0
        queued = {d.post["url"] for d in alerts.pending(svc.store, alerts.CLI)}
        assert queued == {p["link"] for p in batch + [second]}
    finally:
        svc.close()


def test_first_poll_failing_does_not_turn_the_feed_into_news(tmp_path, blog):
    svc = make_services(tmp_path / "data")
    try:
        blog.fail_next("truncate", path="/feed/")
        assert not watch.poll(svc.store, svc.settings, lambda: svc.run_index(progress=False), blog.feed_url, target=alerts.CLI).ok
        assert alerts.watermark(svc.store, alerts.CLI) is None
        assert watch.poll(svc.store, svc.settings, lambda: svc.run_index(progress=False), blog.feed_url, target=alerts.CLI).queued == []
    finally:
        svc.close()


def test_watch_once_with_an_unreachable_feed_fails_and_says_so_once(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed/"
    src = Path(__file__).resolve().parents[1] / "src"
    result = subprocess.run([sys.executable, "-m", "pbrbot", "--data-dir", str(tmp_path / "d"), "watch", "--once",
                             "--feed", url], env={**os.environ, "PYTHONPATH": str(src)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()  # once: not also as a log warning
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"127.0.0.1:{port}" in lines[0], result.stderr
    assert result.stdout == ""


def today_at(hour: int) -> str:
    return datetime.now(timezone.utc).strftime(f"%Y-%m-%dT{hour:02d}:00:00")


def test_posts_published_while_the_blog_was_down_at_first_start_are_announced_once(tmp_path, blog):
    blog.fail_next(503, times=1000)
    assert run_watch(tmp_path, blog.url, code=1) == []  # down: nothing stored, but the watcher's start is kept
    during = [blog.add_post("Published during the outage", date=today_at(0)),
              blog.add_post("Also published during the outage", date=today_at(1))]
    blog.clear_faults()
    # the 3 posts of the back catalogue (2013) are not news; the 2 of today are, once
    assert [p["url"] for p in run_watch(tmp_path, blog.url)] == [p["link"] for p in during]
    assert run_watch(tmp_path, blog.url) == []


def test_a_restart_with_500_old_posts_announces_none(tmp_path, blog):
    blog.fail_next(503, times=1000)
    assert run_watch(tmp_path, blog.url, code=1) == []
    blog.clear_faults()
    blog.add_posts(497)  # 500 posts, all dated 2013
    assert run_watch(tmp_path, blog.url) == []
    assert run_watch(tmp_path, blog.url) == []  # a restart: a new process, the same archive


@pytest.mark.slow
def test_posts_stored_by_a_first_poll_that_was_killed_are_announced(tmp_path, blog):
    """`pbrbot watch` SIGKILLed after storing the posts of its first poll, before queueing any."""
    fresh = [blog.add_post("New since the watcher started", date=today_at(2))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBRBOT_")}
    env.update(PBRBOT_MODEL="fake:64", PBRBOT_TEST_CRASH_AT="after_ingest")
    killed = subprocess.run([sys.executable, "-m", "pbrbot", "--data-dir", str(tmp_path / "data"), "watch",
                             "--once", "--json", "--feed", blog.url], env=env, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL and killed.stdout == b""
    assert [p["url"] for p in run_watch(tmp_path, blog.url)] == [p["link"] for p in fresh]
    assert run_watch(tmp_path, blog.url) == []


@pytest.mark.parametrize("kind", ["site", "feed"])
def test_two_posts_with_identical_text_at_two_urls_are_both_stored_and_announced(tmp_path, blog, kind):
    url = blog.url if kind == "site" else blog.feed_url
    assert run_watch(tmp_path, url) == []
    twins = [blog.add_post("Weekly round-up", "The same words, posted twice.", date=today_at(3 + i), slug=slug)
             for i, slug in enumerate(("round-up", "round-up-2"))]  # the same day: the same content hash
    assert sorted(p["url"] for p in run_watch(tmp_path, url)) == sorted(p["link"] for p in twins)
    store = Store(tmp_path / "data" / "pbrbot.db")
    first, second = (store.get_post_by_url(p["link"]) for p in twins)
    assert first["content_hash"] == second["content_hash"] and first["id"] != second["id"]
    store.close()

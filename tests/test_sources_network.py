"""Network sources against a local fake WordPress blog: REST API pagination and increments, the feed,
retries on 500 and timeouts, truncated documents, 404 sites. All through the real CLI."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner
from fakeblog import FakeBlog
from test_sources_files import stored

from pbrbot.cli import main
from pbrbot.config import load_settings
from pbrbot.sources import SourceError
from pbrbot.sources.http import Fetcher


def ingest(data_dir, *specs, **env):
    env = {f"PBRBOT_{k.upper()}": str(v) for k, v in env.items()}
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "ingest", "--json", *specs], env=env)
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result, report


@pytest.fixture
def blog():
    with FakeBlog() as b:
        yield b


def test_wordpress_api_250_posts_over_3_pages_then_one_edit(tmp_path, blog):
    blog.add_posts(249)
    special = blog.add_post("Thou shalt commission for a single purpose", "First paragraph.\n\nSecond one.",
                            tags=["commissioning"])
    result, report = ingest(tmp_path, blog.url)
    assert result.exit_code == 0, result.output
    assert (report["new"], report["updated"], report["skipped"]) == (250, 0, [])
    api = blog.requests_to("/wp-json/wp/v2/posts")
    assert sorted(r.query["page"] for r in api) == ["1", "2", "3"]
    assert all(r.query["per_page"] == "100" and "modified_after" not in r.query for r in api)
    assert all(r.headers["user-agent"].startswith("pbrbot/") for r in api)
    posts = stored(tmp_path)
    assert len(posts) == 250
    post = posts[special["link"]]
    assert post["text"] == "First paragraph.\n\nSecond one."
    assert post["guid"] == str(special["id"]) and post["author"] == "Russell Webster"
    assert post["tags"] == ["Payment by results", "commissioning"]
    assert post["date"] == special["date_gmt"][:10]

    blog.requests.clear()
    blog.edit_post(17, text="This post was edited after the first ingest.")
    result, report = ingest(tmp_path, blog.url)
    assert (report["new"], report["updated"], report["unchanged"]) == (0, 1, 0)
    (request,) = blog.requests_to("/wp-json/wp/v2/posts")
    assert request.query["modified_after"] == special["modified_gmt"] + "Z"  # the newest seen on the first run
    assert stored(tmp_path)[blog.get_post(17)["link"]]["text"] == "This post was edited after the first ingest."


def test_500_then_success_and_429_with_retry_after(tmp_path, blog):
    blog.add_posts(3)
    blog.fail_next(500, times=1)
    blog.fail_next(429, times=1)  # the fake sends Retry-After: 0
    result, report = ingest(tmp_path, blog.url)
    assert result.exit_code == 0 and report["new"] == 3
    assert len(blog.requests_to("/wp-json")) == 3


def test_timeout_is_retried(tmp_path, blog):
    blog.add_posts(2)
    blog.fail_next("hang", times=1)
    result, report = ingest(tmp_path, blog.url, http_timeout=0.3)
    assert result.exit_code == 0 and report["new"] == 2
    assert len(blog.requests_to("/wp-json")) == 2


def test_connection_cut_mid_body_is_retried(tmp_path, blog):
    blog.add_posts(2)
    blog.fail_next("drop", times=1, path="/feed/")
    result, report = ingest(tmp_path, blog.feed_url)
    assert result.exit_code == 0 and report["new"] == 2


def test_unreachable_site_gives_one_clear_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result, _ = ingest(tmp_path, f"http://127.0.0.1:{port}", http_retries=2)
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: could not read http://127.0.0.1:{port}/wp-json/wp/v2/posts after 2 tries: could not connect; "
        "check the URL or your network")


def test_timeouts_every_time_name_the_cause(blog):
    blog.fail_next("hang", times=2)
    with Fetcher(load_settings(http_timeout=0.2, http_retries=2), backoff=0.01) as http:
        with pytest.raises(SourceError, match=r"after 2 tries: timed out; check the URL or your network"):
            http.get(blog.feed_url)


def test_site_without_api_falls_back_to_feed(tmp_path, blog):
    blog.api_enabled = False
    for i in range(12):
        blog.add_post(f"Post {i}", f"Body of post {i} about probation.\n\nGet every blog post by email for free")
    result, report = ingest(tmp_path, blog.url)
    assert result.exit_code == 0 and report["new"] == 10  # a feed carries only the newest posts
    posts = stored(tmp_path)
    assert posts[blog.get_post(12)["link"]]["text"] == "Body of post 11 about probation."
    assert blog.requests_to("/feed/")


def test_feed_url_conditional_and_changes(tmp_path, blog):
    blog.add_posts(3)
    _, report = ingest(tmp_path, blog.feed_url)
    assert report["new"] == 3
    _, report = ingest(tmp_path, blog.feed_url)  # ETag matches: 304, nothing read, nothing changed
    assert (report["new"], report["updated"], report["unchanged"]) == (0, 0, 0)
    assert blog.requests[-1].headers.get("if-none-match")
    blog.add_post("A new one", "Fresh text.")
    blog.edit_post(1, text="Edited text.")
    _, report = ingest(tmp_path, blog.feed_url)
    assert (report["new"], report["updated"], report["unchanged"]) == (1, 1, 2)


def test_truncated_feed_document_keeps_what_was_recovered(tmp_path, blog):
    for i in range(6):
        blog.add_post(f"Post {i}", f"Body {i}.")
    blog.fail_next("truncate", path="/feed/")
    result, report = ingest(tmp_path, blog.feed_url)
    assert result.exit_code == 0
    assert 1 <= report["new"] < 6
    (skip,) = [s for s in report["skipped"] if s["where"] == "document"]
    assert skip["source"] == blog.feed_url and "not well-formed" in skip["reason"]


def test_api_page_that_fails_is_skipped_and_not_counted_as_seen(tmp_path, blog):
    blog.add_posts(150)
    blog.fail_next("truncate", path="/wp-json", page=2)  # page 2 is cut in half: invalid JSON
    result, report = ingest(tmp_path, blog.url)
    assert result.exit_code == 0 and report["new"] == 100
    assert [(s["where"], s["reason"]) for s in report["skipped"]] == [("page 2 of 2", "the response is invalid JSON")]
    _, report = ingest(tmp_path, blog.url)  # the watermark was not advanced: the whole site is read again
    assert (report["new"], report["unchanged"]) == (50, 100)
    assert "modified_after" not in blog.requests_to("/wp-json")[-1].query


def test_404_site_is_a_clear_error_and_non_zero_exit(tmp_path, blog):
    blog.api_enabled = blog.feed_enabled = False
    result, report = ingest(tmp_path, blog.url)
    assert result.exit_code != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {blog.url}: no WordPress REST API at {blog.api_url} (HTTP 404 Not Found)")
    assert "HTTP 404" in last.split("no feed:")[1] and "check the feed URL" in last
    assert report == {"new": 0, "updated": 0, "unchanged": 0, "listings": 0, "skipped": [],
                      "errors": [last[len("error: "):]], "warnings": []}


@pytest.mark.parametrize("status, body, problem", [
    (200, b"<!DOCTYPE html><html><body>Home</body></html>", "the response is an HTML page"),
    (200, b'{"code": "rest_no_route"}', "the response is not a list of posts"),
    (200, b'[{"id": 1', "the response is invalid JSON"),
    (401, b'{"code": "rest_forbidden"}', "HTTP 401 Unauthorized"),
])
def test_what_counts_as_no_api(status, body, problem):
    import httpx

    from pbrbot.sources.http import FetchResult
    from pbrbot.sources.wordpress import _posts_page

    assert _posts_page(FetchResult("http://x/", status, httpx.Headers(), body)) == (None, problem)


def test_retry_after_seconds_or_http_date():
    import time
    from email.utils import formatdate

    from pbrbot.sources.http import _retry_after

    assert _retry_after("7") == 7.0
    assert 50 < _retry_after(formatdate(time.time() + 60, usegmt=True)) <= 60
    assert _retry_after("soon") is None and _retry_after(None) is None

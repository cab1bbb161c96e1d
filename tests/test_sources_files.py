"""File sources through the real CLI: text dumps (the seeds), JSONL, WXR, RSS/Atom files, saved HTML pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pbrbot.cli import main
from pbrbot.sources import find_reader
from pbrbot.sources.html import html_to_text
from pbrbot.sources.sample import sample_dir
from pbrbot.store import open_store

FIXTURES = Path(__file__).parent / "fixtures"
CHROME = ["Keep up-to-date with drugs and crime", "Share This Post", "Related posts", "Leave a Reply",
          "Subscribe", "Get every blog post by email for free"]


def ingest(data_dir, *args, env=None):
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), "ingest", *map(str, args)], env=env)


def stored(data_dir) -> dict[str, dict]:
    store = open_store(data_dir)
    try:
        return {p["url"]: p for p in store.iter_posts()}
    finally:
        store.close()


def assert_no_chrome(posts):
    for post in posts:
        for phrase in CHROME:
            assert phrase.lower() not in post["text"].lower(), (post["url"], phrase)


def test_seed_dumps_store_five_posts_without_chrome_and_rerun_changes_nothing(tmp_path):
    manifest = json.loads((sample_dir() / "manifest.json").read_text())
    first = ingest(tmp_path, sample_dir(), "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["new"] == 5
    posts = stored(tmp_path)
    assert {e["url"]: e["title"] for e in manifest} == {u: p["title"] for u, p in posts.items()}
    assert_no_chrome(posts.values())
    again = ingest(tmp_path, sample_dir())
    assert again.exit_code == 0
    assert again.stdout.startswith("0 new, 0 updated, 5 unchanged, 0 skipped")


def test_jsonl_ten_posts_one_broken_line(tmp_path):
    lines = [json.dumps({"url": f"https://blog.example/p{i}/", "title": f"Post {i}", "date": f"2014-02-{i + 1:02d}",
                         "author": "Russell Webster", "tags": ["PbR"],
                         **({"html": f"<p>Post {i} &amp; probation.</p><p>Share This Post</p>"} if i % 2
                            else {"text": f"Post {i} about probation.\n\nSubscribe"})})
             for i in range(10)]
    lines[6] = lines[6][:25]  # line 7 is cut short
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    result = ingest(tmp_path / "d", path, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["new"] == 9
    assert [(s["source"], s["where"]) for s in report["skipped"]] == [(str(path), "line 7")]
    assert "not valid JSON" in report["skipped"][0]["reason"]
    assert "skipped" in result.stderr and "line 7" in result.stderr
    posts = stored(tmp_path / "d")
    assert posts["https://blog.example/p1/"]["text"] == "Post 1 & probation."
    assert posts["https://blog.example/p0/"]["date"] == "2014-02-01"
    assert posts["https://blog.example/p0/"]["tags"] == ["PbR"]
    assert_no_chrome(posts.values())


@pytest.mark.parametrize("line, reason", [
    ('{"title": "t", "text": "x"}', "needs 'url'"),
    ('{"url": "https://b.example/a", "text": "x"}', "needs a non-empty 'title'"),
    ('{"url": "https://b.example/a", "title": "t"}', "needs 'text' or 'html'"),
    ('[1, 2]', "expected a JSON object"),
])
def test_jsonl_bad_lines_name_the_reason(line, reason):
    from pbrbot.sources.jsonl import parse_line

    with pytest.raises(ValueError, match=reason):
        parse_line(line, "x.jsonl")


def test_wxr_export_reads_published_posts_only(tmp_path):
    result = ingest(tmp_path, FIXTURES / "wordpress-export.xml", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["new"] == 2  # the draft and the page are not posts of the archive
    assert [s["where"] for s in report["skipped"]] == ["item 5 (post id 6001)"]
    posts = stored(tmp_path)
    post = posts["https://www.russellwebster.com/1st-commandment-of-payment-by-results-thou-shalt-commission-"
                 "for-a-single-purpose/"]
    assert post["date"] == "2013-06-13" and post["guid"] == "4812" and post["author"] == "Russell Webster"
    assert post["tags"] == ["Payment by Results", "commissioning"]
    assert "single purpose & measure" in post["text"]
    assert "Share this" not in post["text"] and "comment" not in post["text"]


def test_wxr_broken_xml_keeps_items_before_the_error(tmp_path):
    text = (FIXTURES / "wordpress-export.xml").read_text()
    cut = text.index("<item>", text.index("<item>") + 1) + 200  # inside the second item
    path = tmp_path / "broken.xml"
    path.write_text(text[:cut])
    result = ingest(tmp_path / "d", path, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["new"] == 1
    assert report["skipped"][0]["where"].startswith("line ")
    assert "not well-formed" in report["skipped"][0]["reason"]


def test_rss_and_atom_files(tmp_path):
    result = ingest(tmp_path, FIXTURES / "rss.xml", FIXTURES / "atom.xml", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["new"] == 3
    assert sorted((s["source"].rsplit("/", 1)[-1], s["where"]) for s in report["skipped"]) == [
        ("atom.xml", "entry 2 (guid tag:russellwebster.com,2013:post-4002)"),
        ("rss.xml", "entry 3 (guid https://www.russellwebster.com/?p=5503)"),
    ]
    posts = stored(tmp_path)
    jr = posts["https://www.russellwebster.com/the-latest-on-justice-reinvestment/"]
    assert jr["text"].startswith("The MoJ published the year-two results")  # content:encoded, not the teaser
    assert jr["date"] == "2013-11-29" and jr["tags"] == ["Justice reinvestment"]
    assert posts["https://www.russellwebster.com/summary-only/"]["text"] == (
        "Only the summary of this post is in the feed.")
    atom = posts["https://www.russellwebster.com/is-payment-by-results-rocket-science/"]
    assert atom["date"] == "2013-03-06" and atom["author"] == "Russell Webster"
    assert_no_chrome(posts.values())


def test_truncated_feed_file_keeps_recovered_entries(tmp_path):
    text = (FIXTURES / "rss.xml").read_text()
    path = tmp_path / "cut.rss"
    path.write_text(text[: text.index("<item>", text.index("summary-only") - 300) + 400])
    report = json.loads(ingest(tmp_path / "d", path, "--json").stdout)
    assert report["new"] >= 1
    assert any(s["where"] == "document" and "not well-formed" in s["reason"] for s in report["skipped"])


def test_saved_html_pages(tmp_path):
    result = ingest(tmp_path, FIXTURES / "html", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["new"] == 2
    assert [(s["where"], s["reason"]) for s in report["skipped"]] == [
        ("no-canonical.html", "no canonical URL in the page (link rel=canonical or og:url)")]
    posts = stored(tmp_path)
    rocket = posts["https://www.russellwebster.com/is-payment-by-results-rocket-science/"]
    assert rocket["title"] == "Is payment by results rocket science?" and rocket["date"] == "2013-03-06"
    assert rocket["text"].startswith("12 things I learnt from the Policy Exchange PbR Event")
    assert "must not be stored" not in rocket["text"] and "should never appear" not in rocket["text"]
    og_only = posts["https://www.russellwebster.com/the-latest-on-justice-reinvestment/"]
    assert og_only["text"].endswith("once the pilot funding ended.")
    assert_no_chrome(posts.values())


def test_bad_files_give_one_clear_line_and_fail_when_nothing_read(tmp_path):
    missing = ingest(tmp_path, tmp_path / "nope.jsonl")
    assert missing.exit_code != 0
    assert "nope.jsonl: no such file; check the path" in missing.stderr
    not_feed = tmp_path / "page.xml"
    not_feed.write_text("this is not xml at all")
    result = ingest(tmp_path, not_feed)
    assert result.exit_code != 0 and "not an RSS or Atom feed" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("spec, module", [
    ("https://www.russellwebster.com", "wordpress"),
    ("https://www.russellwebster.com/feed/", "feed"),
    ("https://example.org/news.rss", "feed"),
    ("https://example.org/blog/feed", "feed"),
    ("https://example.org/?feed=rss2", "feed"),
    ("https://example.org/feedback-matters/", "wordpress"),
    ("posts.jsonl", "jsonl"),
    ("posts.ndjson", "jsonl"),
    (str(FIXTURES / "wordpress-export.xml"), "wxr"),
    (str(FIXTURES / "rss.xml"), "feed"),
    (str(FIXTURES / "atom.xml"), "feed"),
    (str(FIXTURES / "html"), "html"),
    ("saved.htm", "html"),
    (str(sample_dir()), "dumps"),
])
def test_detection(spec, module):
    assert find_reader(spec).__name__ == f"pbrbot.sources.{module}"


@pytest.mark.parametrize("html, text", [
    ("<p>One &amp; two</p>\n<p>Three\n   four</p>", "One & two\n\nThree four"),
    ("<ul><li>a</li><li>b<br>c</li></ul>", "a\n\nb\n\nc"),  # no bullet the page does not write
    ("Plain text, no tags", "Plain text, no tags"),
    ("<p>Kept</p><script>alert(1)</script><div class='sharedaddy'><h3>Share this:</h3></div>", "Kept"),
    ("<p>Kept</p><div id='jp-relatedposts'>Related</div><form><p>Leave a reply</p></form>", "Kept"),
    ("It&#8217;s <em>rocket</em> science", "It\u2019s rocket science"),
    ("", ""),
])
def test_html_to_text(html, text):
    assert html_to_text(html) == text

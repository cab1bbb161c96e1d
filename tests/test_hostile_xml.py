"""Hostile XML in a WordPress export and in a feed: no external entity is read (file or network), no DTD is
fetched, and an entity bomb does not expand. Through the real CLI, against a local server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import HostileHost
from test_sources_files import stored

from pbrbot.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "TOPSECRET-4711-do-not-read"
BOMB = ('<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(2, 10)))


@pytest.fixture
def host():
    with HostileHost() as h:
        yield h


def hostile(fixture: str, tmp_path, host, kind: str) -> Path:
    """The fixture with a DOCTYPE of `kind` and the entity used in the first item's title."""
    text = (FIXTURES / fixture).read_text()
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    doctype = {
        "file": f'<!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]>',
        "network": f'<!DOCTYPE rss SYSTEM "{host.url("/dtd")}" [<!ENTITY x SYSTEM "{host.url("/entity")}">]>',
        "bomb": f"<!DOCTYPE rss [{BOMB}<!ENTITY x \"&lol9;\">]>",
    }[kind]
    declaration, rest = text.split("\n", 1)
    start = rest.index("<item>")
    title_at = rest.index("<title>", start) + len("<title>")
    title = rest[title_at:].replace("<![CDATA[", "", 1).replace("]]></title>", "</title>", 1)  # plain text
    rest = rest[:title_at] + "&x; " + title
    path = tmp_path / f"hostile-{kind}-{fixture}"
    path.write_text(f"{declaration}\n{doctype}\n{rest}")
    return path


@pytest.mark.parametrize("fixture", ["wordpress-export.xml", "rss.xml"])
@pytest.mark.parametrize("kind", ["file", "network", "bomb"])
def test_hostile_xml_is_read_without_entities_or_network(tmp_path, host, fixture, kind):
    path = hostile(fixture, tmp_path, host, kind)
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "ingest", "--json", str(path)])
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    posts = stored(tmp_path / "d")
    assert report["new"] == len(posts)
    # the other posts are read as usual, or (libxml2 refuses a bomb outright) the document is one Skip
    assert posts or [s["reason"] for s in report["skipped"]] == [
        "the export is not well-formed XML (Maximum entity amplification factor exceeded, see "
        "xmlCtxtSetMaxAmplification., line 1, column 7); kept the 0 items read before it"]
    everything = json.dumps(list(posts.values()))
    assert SECRET not in everything
    assert host.requests == 0  # no DTD or entity fetched
    assert "lollol" not in everything and all(len(p["title"]) < 200 for p in posts.values())

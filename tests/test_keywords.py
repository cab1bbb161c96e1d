"""FTS5 query building: user text never reaches MATCH raw; hostile input never raises."""

from __future__ import annotations

import pytest

from pbrbot.keywords import build_match, keyword_search, query_terms
from pbrbot.store import Store

NASTY = [
    '"AND OR NEAR( * -:', '"', '""', "'", "*", "-", ":", "^", "(", ")", "()", "NEAR(a b, 2)", "a AND",
    "OR", "NOT", "AND OR NOT", "col:value", "text:justice", "{text}: pilot", "pilot*", "-pilot", "+pilot",
    "a\x00b", "\\", "%_", "🙂 emoji", "justice'); drop table posts;--", "[bracket]", "pilot NEAR/3 sites",
    "ünïcödé wörds", "a" * 5000, "   ", "", "\n\t", "’", "O'Brien’s", "PbR's",
]


@pytest.fixture
def fts(tmp_path):
    store = Store(tmp_path / "k.db")
    store.db.execute("insert into posts (id, url, title, text, content_hash) values (1, 'u', 't', 'x', 'h')")
    for i, text in enumerate([
        "The justice reinvestment pilot ran in six sites.",
        "Social Impact Bonds (SIBs) are a form of payment by results.",
        "O'Brien's NEAR miss AND the text: column",
        "PbR is not rocket science, said Chris Grayling.",
    ], start=1):
        store.db.execute('insert into passages (id, post_id, position, start, "end", text, hash) '
                         "values (?, 1, ?, 0, 0, ?, ?)", [i, i, text, str(i)])
    yield store.db.conn
    store.close()


@pytest.mark.parametrize("text", NASTY)
def test_hostile_input_never_raises(fts, text):
    keyword_search(fts, text, 10)


def test_tokens_are_quoted_and_or_combined():
    assert build_match('pilot AND "sites" NEAR(') == '"pilot" OR "sites" OR "near"'
    assert build_match("the of and") == '"the" OR "of" OR "and"'  # all stopwords: keep them
    assert build_match("   ") is None and build_match("*-:()") is None
    assert build_match("SIB", ["social impact bond"]) == '"sib" OR "social impact bond"'
    assert query_terms("O'Brien’s PbR") == ["o'brien's", "pbr"]


def test_bm25_ranks_matches_and_acronyms_are_found(fts):
    assert keyword_search(fts, "justice reinvestment pilot sites", 5)[0][0] == 1
    assert keyword_search(fts, "PbR", 5)[0][0] == 4
    assert {i for i, _ in keyword_search(fts, "SIB", 5, ["social impact bond"])} == {2}
    assert keyword_search(fts, "", 5) == [] and keyword_search(fts, "zzzz", 5) == []
    scores = [s for _, s in keyword_search(fts, "payment results pilot", 5)]
    assert scores == sorted(scores, reverse=True)

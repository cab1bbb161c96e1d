"""FTS5 query building: user text never reaches MATCH raw; hostile input never raises."""

from __future__ import annotations

import pytest

from pbrbot import keywords
from pbrbot.keywords import KeywordIndex, match_units, query_terms
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
    index = KeywordIndex(store)
    assert index.refresh()
    yield index
    store.close()


def keyword_search(index: KeywordIndex, text: str, k: int, phrases=()):
    return index.search(text, k, phrases)


@pytest.mark.parametrize("text", NASTY)
def test_hostile_input_never_raises(fts, text):
    keyword_search(fts, text, 10)


def test_tokens_are_quoted_as_units():
    assert match_units('pilot AND "sites" NEAR(') == ['"pilot"', '"sites"', '"near"']
    assert match_units("the of and") == ['"the"', '"of"', '"and"']  # all stopwords: keep them
    assert match_units("   ") == [] and match_units("*-:()") == []
    assert match_units("SIB", ["social impact bond"]) == ['"sib"', '"social impact bond"']
    assert query_terms("O'Brien’s PbR") == ["o'brien's", "pbr"]


def test_bm25_ranks_matches_and_acronyms_are_found(fts):
    assert keyword_search(fts, "justice reinvestment pilot sites", 5)[0][0] == 1
    assert keyword_search(fts, "PbR", 5)[0][0] == 4
    assert {i for i, _ in keyword_search(fts, "SIB", 5, ["social impact bond"])} == {2}
    assert keyword_search(fts, "", 5) == [] and keyword_search(fts, "zzzz", 5) == []
    scores = [s for _, s in keyword_search(fts, "payment results pilot", 5)]
    assert scores == sorted(scores, reverse=True)


def test_stems_are_fts5s_own(fts):
    assert fts.stems(["binary", "policies", '"social impact bonds"', "O'Brien’s", "!!"]) == {
        "binary": ("binari",), "policies": ("polici",), '"social impact bonds"': ("social", "impact", "bond"),
        "O'Brien’s": ("o", "brien", "s"), "!!": ()}


def test_term_counts_follow_the_index(fts):
    assert fts.doc_counts(["pilot", "justic", "zzz"]) == {"pilot": 1, "justic": 1, "zzz": 0}
    assert fts.counted_passages() == 4
    assert not fts.refresh()  # nothing changed
    fts.conn.execute('insert into passages (id, post_id, position, start, "end", text, hash) '
                     "values (5, 1, 5, 0, 0, 'Another pilot, in Wales.', '5')")
    assert fts.refresh() and fts.doc_counts(["pilot"]) == {"pilot": 2} and fts.counted_passages() == 5


def test_no_counts_yet_means_the_plain_or_query(tmp_path):
    store = Store(tmp_path / "fresh.db")
    index = KeywordIndex(store)
    assert index.doc_counts(["pilot"]) is None
    assert index.plan("justice pilot").match == '"justice" OR "pilot"'
    store.close()


@pytest.fixture
def big(tmp_path):
    """600 passages: 'common' in all of them, 'middling' in 200, 'rare' in 3 (1, 2 and 3)."""
    store = Store(tmp_path / "big.db")
    store.db.execute("insert into posts (id, url, title, text, content_hash) values (1, 'u', 't', 'x', 'h')")
    rows = [(i, i, " ".join(["common words here"] + ["middling"] * (i % 3 == 0) + ["rare"] * (i <= 3)))
            for i in range(1, 601)]
    store.db.conn.executemany('insert into passages (id, post_id, position, start, "end", text, hash) '
                              "values (?, 1, ?, 0, 0, ?, 'h')", rows)
    index = KeywordIndex(store)
    index.refresh()
    yield index
    store.close()


def test_the_plan_keeps_rare_words_within_the_budget(big, monkeypatch):
    monkeypatch.setattr(keywords, "POSTINGS_BUDGET", 250)
    plan = big.plan("rare middling common")
    assert plan.match == '"rare" OR "middling"' and plan.dropped == ['"common"'] and plan.postings == 203
    # The ranking among what is kept is BM25's: the rare passages that also say "middling" come first.
    assert [i for i, _ in big.search("rare middling common", 3)] == [3, 1, 2]
    # Over budget even alone: pairs of the rarest three AND-ed (here passages 3, 6, 9 ... hold both words).
    monkeypatch.setattr(keywords, "POSTINGS_BUDGET", 100)
    plan = big.plan("middling common")
    assert plan.match == '("middling" AND "common")'
    assert {i for i, _ in big.search("middling common", 500)} == set(range(3, 601, 3))
    big.conn.execute('insert into passages (id, post_id, position, start, "end", text, hash) '
                     "values (601, 1, 601, 0, 0, 'extra common words', 'h')")
    big.refresh(force=True)
    monkeypatch.setattr(keywords, "POSTINGS_BUDGET", 0)
    assert big.plan("middling common extra").match == \
        '("extra" AND "middling") OR ("extra" AND "common") OR ("middling" AND "common")'
    assert 601 in {i for i, _ in big.search("middling common extra", 500)}  # extra AND common
    # A lone word that most passages hold is left to the dense half.
    monkeypatch.setattr(keywords, "MAX_POSTINGS", 500)
    assert big.plan("common").match is None and big.search("common", 5) == []


def test_a_word_newer_than_the_counts_is_still_searched(big):
    big.conn.execute('insert into passages (id, post_id, position, start, "end", text, hash) '
                     "values (1000, 1, 1000, 0, 0, 'a brandnew word', 'h')")
    assert not big.refresh()  # one passage in 600: the counts are not redone
    assert big.search("brandnew common", 1)[0][0] == 1000

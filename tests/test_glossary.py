"""The packaged glossary: terms, aliases, autocomplete, acronym expansion."""

import pytest

from pbrbot.errors import PbrbotError
from pbrbot.glossary import load_glossary

REQUIRED = ["binary", "frequency", "cherry picking", "creaming", "parking", "deadweight", "attribution", "PbR",
            "SIB", "TR", "CRC", "NPS", "NOMS", "MoJ", "JDL", "prime", "subcontractor", "outcome payment",
            "cohort", "baseline", "justice reinvestment", "PPO", "through the gate", "Work Programme"]


@pytest.fixture(scope="module")
def glossary():
    return load_glossary()


def test_at_least_forty_terms_with_the_required_ones(glossary):
    names = {t.name for t in glossary.terms()}
    assert len(names) >= 40
    assert not [r for r in REQUIRED if r not in names]
    assert all(t.expansion for t in glossary.terms())


def test_lookup_by_name_or_alias_ignores_case_and_hyphens(glossary):
    assert glossary.get("Social Impact Bonds").name == "SIB"
    assert glossary.get("cherry-picking").name == "cherry picking"
    assert glossary.get("moj").name == "MoJ"
    assert glossary.get("no such thing") is None


@pytest.mark.parametrize("typed, expected", [("cher", "cherry picking"), ("creeming", "creaming"),
                                             ("dedweight", "deadweight"), ("justice re", "justice reinvestment"),
                                             ("sib", "SIB")])
def test_suggest_is_fuzzy_and_best_first(glossary, typed, expected):
    assert glossary.suggest(typed)[0] == expected


def test_suggest_limits_and_lists_all_for_empty_text(glossary):
    assert len(glossary.suggest("", limit=25)) == 25
    assert glossary.suggest("xyzzy") == []


def test_expand_spells_out_acronyms_and_abbreviates_names(glossary):
    assert "Community Rehabilitation Company" in glossary.expand("what did the CRCs do?")
    assert "JDL" in glossary.expand("What was the Justice Data Lab for?")
    assert glossary.expand("how do I bake bread") == "how do I bake bread"
    # A two-letter acronym only in capitals: "tr" inside ordinary text is not Transforming Rehabilitation.
    assert glossary.mentioned("tr is short") == [] and glossary.mentioned("TR is short")[0].name == "TR"


def test_broken_glossary_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "g.toml"
    bad.write_text("[[term]]\nname = \n")
    with pytest.raises(PbrbotError, match="cannot read glossary"):
        load_glossary(bad)
    bad.write_text("[[term]]\naliases = ['x']\n")
    with pytest.raises(PbrbotError, match="term 1 has no name"):
        load_glossary(bad)


def test_mentions_are_found_in_any_case_and_with_letters_re_equates_with_ascii(glossary):
    """Regexes are compiled only for forms whose first word a text holds; that shortcut must not lose the
    matches re's IGNORECASE makes through the four non-ASCII letters it equates with ASCII ones."""
    def names(text: str) -> list[str]:
        return [t.name for t in glossary.mentioned(text)]

    assert names("Was the SOCIAL IMPACT BOND at Peterborough a success?")[:1] == ["SIB"]
    assert "SIB" in names("a \u017focial impact bond")  # long s, matched as s
    assert "cherry picking" in names("CHERRY-PICKING by providers")
    assert names("nothing to see here") == []


@pytest.mark.parametrize("question, terms", [
    ("what is binary vs frequency measurement", ["binary", "frequency"]),
    ("What's the difference between binary and frequency measures?", ["binary", "frequency"]),
    ("what does PbR mean?", ["PbR"]),
    ("define parking", ["parking"]),
    ("What are SIBs", ["SIB"]),
    ("binary?", ["binary"]),
    ("how did the Peterborough SIB do?", []),  # names a term, asks about something else
    ("what is the evidence on SIBs", []),
    ("when did TR start", []),
    ("who ran the Peterborough bond", []),
])
def test_the_terms_a_question_asks_the_meaning_of(glossary, question, terms):
    assert [t.name for t in glossary.asked_about(question)] == terms

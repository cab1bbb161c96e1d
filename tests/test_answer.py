"""Answers over the real sample archive and model: verbatim quotes, deep links, refusals, comparisons, define."""

import json
import re

import pytest
from click.testing import CliRunner

from pbrbot.cli import main
from pbrbot.definitions import UnknownTerm
from pbrbot.evaluate import load_questions
from pbrbot.fragments import decode_link
from pbrbot.questions import QUESTION_CHARS, comparison_sides, read_part
from pbrbot.sources.sample import seed_questions_path


def squash(text):
    return " ".join(text.split())


def assert_verbatim(services, quote):
    """Each ellipsis-cut segment is the post's own text; the link's words are too, in order."""
    post = services.store.get_post_by_url(quote.url)
    page = squash(post["text"])
    segments = quote.text.split(" … ")
    for segment in segments:
        assert squash(segment) in page, segment
    start, end = decode_link(quote.link)
    at = page.find(squash(start))
    assert at == page.find(squash(segments[0])), "textStart must be the first match in the post"
    if end is not None:
        assert page.find(squash(end), at + len(start)) >= 0


@pytest.mark.parametrize("question, sides", [
    ("what is binary vs frequency measurement", ["binary", "frequency measurement"]),
    ("What is the difference between creaming and parking?", ["creaming", "parking"]),
    ("Will mentors be volunteers or paid staff?", ["volunteers", "paid staff"]),
    ("SIBs versus PbR", ["SIBs", "PbR"]),
    ("Why did the Work Programme fail?", []),
])
def test_comparison_sides(question, sides):
    assert comparison_sides(question) == sides


@pytest.mark.parametrize("question, read", [
    ("  What  is\n a SIB? ", "What is a SIB?"),
    ("word " * 199 + "word?", ("word " * 199 + "word?")),  # 1,000 characters: read whole
    ("word " * 200 + "tail?", ("word " * 199 + "word")),  # cut at the last word's end within the limit
    ("x" * 1500, "x" * 1000),  # no space to cut at
])
def test_read_part(question, read):
    assert read_part(question) == read and len(read) <= QUESTION_CHARS


@pytest.mark.slow
def test_a_long_question_is_read_in_part_and_answered_as_its_read_part(sample_services):
    question = "What is a SIB? " + " ".join(["and how were payments by results measured at Peterborough"] * 60)
    runner = CliRunner()
    data = ["--data-dir", str(sample_services.settings.data_dir), "ask"]
    out = runner.invoke(main, [*data, "--json", "--no-record", question])
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    assert answer["read_chars"] == QUESTION_CHARS and answer["question"] == read_part(question)
    assert question.startswith(answer["question"]) and len(answer["question"]) > QUESTION_CHARS - 60
    part = json.loads(runner.invoke(main, [*data, "--json", "--no-record", answer["question"]]).output)
    assert "read_chars" not in part and {**answer, "read_chars": None} == {**part, "read_chars": None}
    out = runner.invoke(main, [*data, "--no-record", question])
    assert out.output.startswith("Only the first 1,000 characters of the question were read.\n")


@pytest.mark.slow
def test_every_seed_answer_quotes_the_posts_verbatim(sample_services):
    answerer = sample_services.answerer
    for item in load_questions(seed_questions_path()):
        answer = answerer.ask(item["question"])
        assert len(answer.quotes) <= 3
        for quote in answer.quotes:
            assert_verbatim(sample_services, quote)
            assert len(quote.text.split()) <= 130


@pytest.mark.slow
def test_binary_vs_frequency_quotes_both_measures_with_working_links(sample_services):
    answer = sample_services.answerer.ask("what is binary vs frequency measurement")
    assert answer.found
    text = " ".join(q.text.lower() for q in answer.quotes)
    assert "binary" in text and "frequency" in text
    assert len({q.url for q in answer.quotes}) >= 2  # different posts preferred
    for quote in answer.quotes:
        assert "#:~:text=" in quote.link and "%2D" in quote.link or "-" not in quote.link.split("#", 1)[1]
        assert_verbatim(sample_services, quote)


@pytest.mark.slow
def test_out_of_scope_is_refused_with_related_posts_only_when_something_is_close(sample_services):
    answer = sample_services.answerer.ask("How do I bake sourdough bread at home?")
    assert not answer.found and answer.quotes == [] and answer.related == []  # nothing is even close
    assert set(answer.to_json_dict()) == {"question", "found", "quotes", "related"}
    near = sample_services.answerer.ask("How many prisoners were released early under the 2024 SDS40 scheme?")
    assert not near.found and near.quotes == []
    assert 1 <= len(near.related) <= 3


@pytest.mark.slow
def test_calibration_questions_answered_and_refused(sample_services):
    from pathlib import Path

    items = load_questions(Path(__file__).parent / "data" / "calibration-questions.jsonl")
    wrong = [q["id"] for q in items
             if sample_services.answerer.ask(q["question"]).found != (q["kind"] != "out_of_scope")]
    assert len(wrong) <= 1, wrong


@pytest.mark.slow
def test_define_quotes_the_archive_and_suggests_unknown_terms(sample_services):
    answer = sample_services.answerer.define("Cherry-Picking")
    assert answer.found and answer.term == "cherry picking"
    assert "easiest to place" in answer.quotes[0].text
    assert json.loads(json.dumps(answer.to_json_dict()))["term"] == "cherry picking"
    with pytest.raises(UnknownTerm) as err:
        sample_services.answerer.define("creeming")
    assert err.value.suggestions[0] == "creaming"


@pytest.mark.slow
def test_cli_ask_define_terms(sample_services):
    runner = CliRunner()
    data = ["--data-dir", str(sample_services.settings.data_dir)]
    out = runner.invoke(main, [*data, "ask", "Who said PbR isn't rocket science?"])
    assert out.exit_code == 0, out.output
    # the post's date is estimated from the event it reports: shown as such
    assert "Chris Grayling" in out.output and "#:~:text=" in out.output and "(c. March 2013)" in out.output
    out = runner.invoke(main, [*data, "ask", "Who won the football world cup in 2022?"])
    assert "no answer" in out.output and "Related" not in out.output
    out = runner.invoke(main, [*data, "ask", "How many prisoners were released early under the 2024 SDS40 scheme?"])
    assert "no answer" in out.output and "Related, not an answer" in out.output
    out = runner.invoke(main, [*data, "ask", "--json", "-"], input="What is a SIB?\n\nWhat is the first commandment?\n")
    lines = [json.loads(line) for line in out.output.splitlines()]  # one per input line, the blank one too
    assert len(lines) == 3 and lines[1] == {"question": "", "error": "empty question"}
    # "What is a SIB?" asks what a term means: the glossary's own words come with the quotes (not as one)
    assert set(lines[0]) == {"question", "found", "quotes", "related", "glosses"}
    assert lines[0]["glosses"][0]["term"] == "SIB" and "repaid by outcome payments" in lines[0]["glosses"][0]["gloss"]
    assert set(lines[2]) == {"question", "found", "quotes", "related"}
    assert set(lines[2]["quotes"][0]) == {"text", "url", "link", "title", "date", "score"}
    out = runner.invoke(main, [*data, "define", "--json", "parking"])  # the glossary has it, the sample not
    parking = json.loads(out.output.splitlines()[-1])
    assert parking["term"] == "parking" and parking["gloss"].startswith("Giving minimal service")
    out = runner.invoke(main, [*data, "define", "parking"])
    assert "Glossary: Giving minimal service" in out.output and "no sentence that explains it" in out.output
    # the README's question: the sample has no sentence saying what either measure counts, the glossary does
    out = runner.invoke(main, [*data, "ask", "what is binary vs frequency measurement"])
    head = out.output.split("In the archive:")[0]
    assert "binary: A reoffending measure that counts whether each person reoffends" in head
    assert "frequency: A reoffending measure that counts how many further offences" in head
    assert "not a quote" in head and "“" not in head
    quoted = {}
    for term in ("binary", "frequency", "CRC", "cherry picking", "PbR", "SIB"):
        for quote in sample_services.answerer.define(term).quotes:
            quoted.setdefault(quote.text, []).append(term)
            assert any(w in quote.text.lower() for w in {"binary": ["binary"], "frequency": ["frequency"],
                                                        "CRC": ["crc", "community rehabilitation"],
                                                        "cherry picking": ["cherry"], "PbR": ["pbr", "payment by"],
                                                        "SIB": ["sib", "social impact bond"]}[term]), (term, quote)
    assert all(len(terms) == 1 for terms in quoted.values()), quoted  # no sentence defines two of them
    out = runner.invoke(main, [*data, "define", "xyzzy"])
    assert out.exit_code == 1 and out.output.startswith("error: unknown term") and "\n" == out.output[-1]
    out = runner.invoke(main, [*data, "terms"])
    assert out.exit_code == 0 and len(re.findall(r"^\S", out.output, re.M)) >= 40


@pytest.mark.slow
def test_ask_on_an_empty_data_dir_loads_the_sample_first(tmp_path, real_embedder):
    out = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "ask", "--json", "What is a SIB?"])
    assert out.exit_code == 0, out.output
    assert "loading the sample archive" in out.output
    assert json.loads(out.output.splitlines()[-1])["question"] == "What is a SIB?"

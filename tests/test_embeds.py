"""Pure formatting: mention neutralising, trimming, and answers as embeds within Discord's limits."""

from __future__ import annotations

import re

import pytest

from pbrbot.chat import embeds
from pbrbot.chat.embeds import ZWSP, answer_embed, fits, neutralize, post_list_embed, quotes_in, trim
from pbrbot.models import Answer, Gloss, Quote, Related

LINK = "https://www.russellwebster.com/pbr/#:~:text=payment%20by%20results,the%20end"


def quote(text="Payment by results pays for outcomes. It is not new.", title="PbR explained", date="2013-06-13",
          link=LINK):
    return Quote(text=text, url=link.split("#")[0], link=link, title=title, date=date, score=0.9)


@pytest.mark.parametrize("text, expected", [
    ("@everyone read this", f"@{ZWSP}everyone read this"),
    ("hi @here!", f"hi @{ZWSP}here!"),
    ("ask <@123456>", f"ask <@{ZWSP}123456>"),
    ("ask <@!123456>", f"ask <@{ZWSP}!123456>"),
    ("role <@&987>", f"role <@{ZWSP}&987>"),
    ("email me@example.org, <#123> channel", "email me@example.org, <#123> channel"),
    (None, ""),
])
def test_neutralize(text, expected):
    assert neutralize(text) == expected


PINGS = re.compile(r"@everyone|@here|<@[!&]?\d")


@pytest.mark.parametrize("text, limit, expected", [
    ("Short.", 100, "Short."),
    ("First sentence here. Second sentence is longer than the rest.", 40, "First sentence here.…"),
    ("One long sentence without any full stop at all in it", 30, "One long sentence without any…"),
    ("Intro. See [the post](https://example.org/a-very-long-link-to-a-post) for more", 50, "Intro. See…"),
    ("Words words words words https://example.org/a/very/long/url/that/goes/on", 45, "Words words words words…"),
    ("Ends with a question? Then more text follows here", 30, "Ends with a question?…"),
])
def test_trim_at_sentences_never_mid_link(text, limit, expected):
    out = trim(text, limit)
    assert out == expected and len(out) <= limit


@pytest.mark.parametrize("answer", [
    Answer(question="What is PbR?", found=True, quotes=[quote()]),
    Answer(question="x" * 1000, found=True, quotes=[quote("A sentence. " * 800) for _ in range(10)]),
    Answer(question="long links", found=True,
           quotes=[quote("Text. " * 300, title="T" * 500, link=LINK + "%20x" * 900) for _ in range(5)]),
    Answer(question="@everyone <@&1> ping?", found=True,
           quotes=[quote("@everyone look <@123> and <@!5> and <@&9> @here", title="@here title")]),
    Answer(question="nothing <@1>", found=False,
           related=[Related(url=f"https://example.org/{i}", title=f"Post {i} @everyone") for i in range(300)]),
    Answer(question="term", term="PbR", found=True, quotes=[quote()] * 3),
])
def test_answer_embeds_fit_discord_limits_and_ping_nobody(answer):
    embed = answer_embed(answer)
    assert fits(embed)
    text = str(embed.to_dict())
    assert not PINGS.search(text)


def test_answer_embed_layout():
    answer = Answer(question="What is PbR?", found=True,
                    quotes=[quote(), quote("Second quote.", title="Other [post]", date=None)])
    data = answer_embed(answer).to_dict()
    assert data["title"] == "What is PbR?"
    first, second = data["description"].split("\n\n")
    assert first == f"> Payment by results pays for outcomes. It is not new.\n— **[PbR explained]({LINK})** · 13 June 2013"
    assert second.startswith("> Second quote.\n— **[Other (post)](")
    assert data["footer"]["text"].endswith("quotes 1–2")
    assert quotes_in(data) == [{"title": "PbR explained", "link": LINK},
                               {"title": "Other (post)", "link": LINK}]
    assert embeds.question_in(data) == ("ask", "What is PbR?")
    more = answer_embed(answer, start=1).to_dict()
    assert more["description"].startswith("> Second quote.") and more["footer"]["text"].endswith("quote 2")


def test_long_quotes_are_trimmed_at_sentences_keeping_every_link_whole():
    long = " ".join(f"Sentence number {i} is about payment by results." for i in range(200))
    data = answer_embed(Answer(question="q", found=True, quotes=[quote(long)] * 3)).to_dict()
    assert len(data["description"]) <= embeds.DESCRIPTION
    assert data["description"].count(f"]({LINK})") == 3
    for block in data["description"].split("\n\n"):
        assert block.split("\n")[0].endswith("results.…")


def test_a_question_read_in_part_says_so_found_or_not():
    note = "*Only the first 1,000 characters of the question were read.*"
    found = Answer(question="What is PbR?", found=True, quotes=[quote()], read_chars=1000)
    assert answer_embed(found).to_dict()["description"].startswith(note + "\n\n> Payment by results")
    refused = Answer(question="Who won the cup?", found=False, read_chars=1000)
    assert note in answer_embed(refused).to_dict()["description"]
    assert "characters" not in answer_embed(found.model_copy(update={"read_chars": None})).to_dict()["description"]


def test_not_found_says_so_and_lists_related_posts():
    answer = Answer(question="Who won the cup?", found=False,
                    related=[Related(url="https://example.org/a", title="A post")])
    data = answer_embed(answer).to_dict()
    assert data["title"] == "Not in the archive"
    assert "couldn't find" in data["description"] and "• [A post](https://example.org/a)" in data["description"]


def test_define_title_round_trips():
    data = answer_embed(Answer(question="PbR", term="PbR", found=True, quotes=[quote()])).to_dict()
    assert embeds.question_in(data) == ("define", "PbR")


def test_post_list_and_fields():
    posts = [{"title": f"Post {i}", "url": f"https://example.org/{i}", "date": "2020-01-02",
              "snippet": "x " * 400} for i in range(100)]
    embed = post_list_embed("Newest posts", posts)
    assert fits(embed) and embed.description.startswith("**1.** [Post 0](https://example.org/0) · 2 January 2020")
    assert post_list_embed("t", [], "Nothing.").description == "Nothing."
    many = embeds.fields_embed("About", {f"k{i}": "v" * 2000 for i in range(40)})
    assert fits(many) and 0 < len(many.fields) < 25


MASKED = re.compile(r"\[[^\]]*\]\(\s*<?https?://")  # a masked link as Discord renders it: `](` touching


@pytest.mark.parametrize("text", [
    "[Claim free Discord Nitro](https://evil.example/nitro)",
    "two: [a](https://evil.example/a) and [b](<https://evil.example/b>)",  # escape_markdown misses the 2nd
    "\\[escaped](https://evil.example/c) and *[bold](https://evil.example/d)*",
])
def test_neutralize_makes_masked_links_inert_and_keeps_the_text(text):
    out = neutralize(text)
    assert not MASKED.search(out)
    assert out.replace(ZWSP, "") == text  # shown as typed


def test_masked_links_in_questions_titles_quotes_and_fields_are_inert_but_ours_work():
    evil = "[Claim free Discord Nitro](https://evil.example/nitro)"
    found = Answer(question=f"what is {evil}?", found=True, quotes=[
        quote(text=f"Payment by results {evil} pays for outcomes.", title=f"PbR {evil}")])
    missing = Answer(question=f"what is {evil}?", found=False, quotes=[],
                     related=[Related(title=evil, url="https://www.russellwebster.com/x/")])
    made = [answer_embed(found), answer_embed(missing),
            post_list_embed(f"Posts matching “{evil}”", [{"title": evil, "url": "https://www.russellwebster.com/y/",
                                                          "snippet": evil}]),
            embeds.fields_embed(evil, {evil: embeds.neutralize(evil),
                                       "Newest post": embeds.link(evil, "https://www.russellwebster.com/z/")})]
    for embed in made:
        text = str(embed.to_dict())
        assert "Claim free Discord Nitro" in text
        assert not re.search(r"\]\(\s*<?https://evil", text), text
    # the bot's own links still work: to the posts, not to what the title says
    assert re.search(r"\]\(https://www\.russellwebster\.com/pbr/", made[0].description)
    assert "](https://www.russellwebster.com/x/)" in made[1].description
    assert "](https://www.russellwebster.com/z/)" in made[3].fields[1].value
    assert embeds.question_in(made[0].to_dict()) == ("ask", f"what is {evil}?")  # "More" asks the same again


def test_glossary_lines_over_the_quotes_or_the_refusal_and_they_ping_nobody():
    quote = Quote(text="Binary counts whether.", url="https://example.org/a", link="https://example.org/a#x",
                  title="A post", date="2013-06-13", score=1.0)
    glosses = [Gloss(term="binary", gloss="Counts whether each person reoffends @everyone [x](https://evil.example)")]
    found = answer_embed(Answer(question="what is binary?", found=True, quotes=[quote], glosses=glosses)).to_dict()
    assert found["description"].startswith("**Glossary, binary:** Counts whether each person reoffends")
    assert found["description"].index("Glossary") < found["description"].index("> Binary counts whether.")
    refused = answer_embed(Answer(question="what is binary?", found=False, glosses=glosses)).to_dict()
    assert refused["description"].startswith("**Glossary, binary:**") and "couldn't find" in refused["description"]
    for text in (found["description"], refused["description"]):
        assert "@everyone" not in text and "](https://evil.example)" not in text

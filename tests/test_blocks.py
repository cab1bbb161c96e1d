"""Block structure (issue 12): sources -> blocks, chrome, listing pages, PostText, fragments, `show`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pbrbot.blocks import is_listing, layout, stored_spans, text_blocks
from pbrbot.chunking import chunk_post
from pbrbot.cli import main
from pbrbot.fragments import decode_link, fragment_link
from pbrbot.indexer import sync_passages
from pbrbot.models import Post
from pbrbot.sentences import PostText
from pbrbot.sources.clean import build_post, strip_chrome
from pbrbot.sources.html import html_blocks
from pbrbot.store import Store

URL = "https://www.russellwebster.com/a-post/"


def test_text_lines_are_classified_conservatively_and_lose_list_markers():
    text = ("12 things I learnt\n\nThere was a line-up including:\n\n  • Chris Grayling, the Justice Secretary\n"
            "  • Jeremy Wright\n\n  1. Research\n\n1. The revolution is going to happen\n\n"
            "What is parking?\n\nReinvestment savings year 2This report only contains the figures.\n\n"
            "A paragraph that is a sentence. And another one.")
    assert text_blocks(text) == [
        ("h", "12 things I learnt"), ("p", "There was a line-up including:"),
        ("li", "Chris Grayling, the Justice Secretary"), ("li", "Jeremy Wright"), ("li", "Research"),
        ("h", "1. The revolution is going to happen"), ("h", "What is parking?"),
        ("caption", "Reinvestment savings year 2"), ("p", "This report only contains the figures."),
        ("p", "A paragraph that is a sentence. And another one."),
    ]
    assert text_blocks("- A dash item\n-1 is a number.") == [("li", "A dash item"), ("p", "-1 is a number.")]
    assert text_blocks("So, I was heartened (4March 2016) to see it.") == [
        ("p", "So, I was heartened (4March 2016) to see it.")]


def test_html_blocks_keep_kinds_and_split_at_line_breaks():
    html = ("<h2>Head <em>x</em></h2><p>One &amp; two</p><ul><li>a</li><li>b<br>c</li></ul>"
            "<blockquote><p>q1</p><p>q2</p></blockquote><figure><img src=x><figcaption>Cap</figcaption></figure>"
            "<table><tr><td>c1</td><td>c2</td></tr></table>")
    assert html_blocks(html) == [("h", "Head x"), ("p", "One & two"), ("li", "a"), ("li", "b"), ("li", "c"),
                                 ("quote", "q1"), ("quote", "q2"), ("caption", "Cap"), ("p", "c1"), ("p", "c2")]


def test_layout_offsets_point_into_the_text_and_old_text_is_read_off_its_lines():
    text, spans = layout([("h", "Title"), ("li", " an  item "), ("p", "A para.")])
    assert text == "Title\n\nan item\n\nA para."
    assert [(k, text[s:e]) for k, s, e in spans] == [("h", "Title"), ("li", "an item"), ("p", "A para.")]
    old = "Heading here\n\n• item one\n• item two.\n\nA para. Two sentences."
    assert [(k, old[s:e]) for k, s, e in stored_spans(old, None)] == [
        ("h", "Heading here"), ("li", "item one"), ("li", "item two."), ("p", "A para. Two sentences.")]


def test_chrome_promo_is_stripped_from_the_end_only_and_image_credits_anywhere():
    body = [("p", "Browse my comprehensive resource pack on Payment by Results to learn more."),
            ("p", "The post itself says something."), ("p", "Thanks to Jane Doe for the image."),
            ("p", "More of the post."),
            ("p", "Browse my comprehensive resource pack on Payment by Results."),
            ("p", "Check out my Marmite Infographic for simple explanation of key PbR jargon.")]
    assert strip_chrome(body) == [body[0], body[1], body[3]]
    assert strip_chrome([("p", "Kept."), ("h", "Related posts"), ("p", "Other post teaser.")]) == [("p", "Kept.")]
    assert strip_chrome([("p", "Kept."), ("h", "Explore your Areas of Interest"), ("h", "Browse by category"),
                         ("h", "Probation"), ("p", "The latest developments in probation policy.")]) == [("p", "Kept.")]


@pytest.mark.parametrize("url", [
    "https://www.russellwebster.com/category/pbr-2/page/8/", "https://www.russellwebster.com/tag/probation/",
    "https://www.russellwebster.com/author/russell/", "https://www.russellwebster.com/2019/05/",
    "https://www.russellwebster.com/page/3/", "https://www.russellwebster.com/?s=probation"])
def test_listing_urls(url):
    assert is_listing(url, [("p", "Some text.")])


def test_listing_by_shape_and_a_post_with_sections_is_not_one():
    teasers = [b for n in range(4) for b in (("h", f"Post number {n}"), ("p", f"The teaser of post {n} goes…"))]
    assert is_listing(URL, teasers)
    assert is_listing(URL, [("p", "Text.")], links=4)
    sections = [b for n in range(6) for b in (("h", f"Section {n}"), ("p", f"What section {n} says."))]
    assert not is_listing(URL, sections)


def _row(post: Post, pid: int = 1) -> dict:
    return {"id": pid, "url": post.url, "title": post.title, "date": None, "text": post.text,
            "blocks": json.dumps(post.blocks), "kind": post.kind}


def test_post_text_sentences_stay_in_blocks_and_headings_are_context_not_candidates():
    post = build_post(text_blocks("What is parking?\nParking is when a provider ignores the hard cases. "
                                  "It saves money.\n  • Providers cream off the easy ones"), url=URL, title="T")
    pt = PostText.from_row(_row(post))
    assert [pt.sentence(i) for i in range(len(pt.spans))] == [
        "What is parking?", "Parking is when a provider ignores the hard cases.", "It saves money.",
        "Providers cream off the easy ones"]
    assert [pt.kind(i) for i in range(4)] == ["h", "p", "p", "li"]
    assert [pt.block(i) for i in range(4)] == [0, 1, 1, 2]
    assert [pt.is_candidate(i) for i in range(4)] == [False, True, True, True]
    assert pt.context(1).startswith("What is parking?")  # the heading above gives context
    assert pt.block_texts() == ["What is parking?", "Parking is when a provider ignores the hard cases. It saves money.",
                                "Providers cream off the easy ones"]
    passages = chunk_post(1, post.text, post.blocks)
    assert all(p.text == post.text[p.start:p.end] for p in passages) and "•" not in post.text


def test_link_terms_each_lie_in_one_block_and_point_at_the_quote():
    blocks = ["Payment by results", "Payment by results pilots ran for years and then stopped.",
              "Payment by results pilots ran for years and then they were all cancelled by the ministry "
              "without warning, which surprised the providers."]
    quote = blocks[2]
    start, end = decode_link(fragment_link(URL, [quote], blocks))
    assert quote.startswith(start) and quote.endswith(end)
    # The browser's first match of textStart (inside one block) is this quote's block, not an earlier one.
    assert [n for n, b in enumerate(blocks) if start.lower() in b.lower()] == [2]
    # A quote spanning blocks (heading + paragraph) is linked from its first block's words to its last's.
    start, end = decode_link(fragment_link(URL, ["What is parking? Parking is when a provider ignores the "
                                                 "hard cases and it saves money."],
                                           ["What is parking?", "Parking is when a provider ignores the hard "
                                            "cases and it saves money."]))
    assert start == "What is parking?" and end in "Parking is when a provider ignores the hard cases and it saves money."


def test_reingest_upgrades_old_posts_and_listing_pages_get_a_passage_per_teaser(tmp_path):
    store = Store(tmp_path / "p.db")
    old = Post(url=URL, title="T", text="Heading\n\n• an item of the list.\n\nA paragraph of the post.")
    assert store.upsert_post(old)[0] == "new"  # as stored before blocks were kept
    new = build_post(text_blocks(old.text), url=URL, title="T")
    assert store.upsert_post(new)[0] == "updated"
    assert store.upsert_post(new)[0] == "unchanged"
    row = store.get_post_by_url(URL)
    assert json.loads(row["blocks"]) == [["h", 0, 7], ["li", 9, 29], ["p", 31, 55]] and row["kind"] == "post"
    teasers = [("h", "How is the justice data lab doing?"),
               ("p", "The Justice Data Lab lets small charities find out whether their work cuts reoffending."),
               ("h", "Paying for the wrong results?"),
               ("p", "The MoJ published its payment mechanism for the new contracts and asked for views.")]
    listing = build_post(teasers, url="https://www.russellwebster.com/category/pbr/", title="PbR")
    assert listing.kind == "listing"
    store.upsert_post(listing)
    sync_passages(store)
    texts = [r[0] for r in store.db.execute("select x.text from passages x join posts p on x.post_id = p.id "
                                            "where p.kind = 'listing' order by x.position")]
    assert texts == [f"{teasers[0][1]}\n\n{teasers[1][1]}", f"{teasers[2][1]}\n\n{teasers[3][1]}"]
    post = PostText.from_row(store.get_post_by_url(listing.url))
    quotable = [i for i in range(len(post.spans)) if post.is_candidate(i)]
    assert [post.teaser(i) for i in quotable] == [teasers[0][1], teasers[2][1]]


def test_show_prints_one_block_a_line_and_json(tmp_path):
    lines = [{"url": URL, "title": "T", "text": "A heading\n\nFirst para.\n\n  • An item\n\nLast para."}]
    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines))
    data = ["--data-dir", str(tmp_path / "d")]
    assert CliRunner().invoke(main, [*data, "ingest", str(src)]).exit_code == 0
    out = CliRunner().invoke(main, [*data, "show", URL])
    assert out.exit_code == 0 and out.output.splitlines()[3:] == ["## A heading", "First para.", "• An item",
                                                                  "Last para."]
    shown = json.loads(CliRunner().invoke(main, [*data, "show", URL, "--json"]).output)
    assert shown["blocks"] == [{"kind": "h", "text": "A heading"}, {"kind": "p", "text": "First para."},
                               {"kind": "li", "text": "An item"}, {"kind": "p", "text": "Last para."}]
    assert (shown["url"], shown["title"], shown["kind"]) == (URL, "T", "post")


def test_saved_page_keeps_its_headings_from_trafilatura_xml(tmp_path):
    from pathlib import Path

    page = Path(__file__).parent / "fixtures" / "html" / "pbr-rocket-science.html"
    data = ["--data-dir", str(tmp_path / "d")]
    assert CliRunner().invoke(main, [*data, "ingest", str(page)]).exit_code == 0
    shown = json.loads(CliRunner().invoke(main, [*data, "show", "https://www.russellwebster.com/"
                                                 "is-payment-by-results-rocket-science/", "--json"]).output)
    kinds = [(b["kind"], b["text"]) for b in shown["blocks"]]
    assert ("h", "1. The rehabilitation revolution is definitely going to happen") in kinds
    assert ("h", "12 things I learnt from the Policy Exchange PbR Event") in kinds
    assert not any("Subscribe" in t or "Leave a Reply" in t for _, t in kinds)
    assert {k for k, _ in kinds} == {"h", "p"}


def test_jsonl_html_field_gives_blocks():
    from pbrbot.sources.jsonl import parse_line

    post = parse_line(json.dumps({"url": URL, "title": "T", "html": "<h2>Why</h2><p>Because it is.</p>"
                                  "<ol><li>First reason</li><li>Second reason</li></ol>"
                                  "<p>Browse my comprehensive resource pack on Payment by Results.</p>"}), "x")
    assert [(k, post.text[s:e]) for k, s, e in post.blocks] == [
        ("h", "Why"), ("p", "Because it is."), ("li", "First reason"), ("li", "Second reason")]


def test_the_next_numbered_heading_of_a_run_is_a_heading_even_with_a_full_stop():
    text = ("10. Mentors for short term prisoners will probably be paid\nDespite the statement, it emerged.\n"
            "11. Penalty clause PbR now the favoured model\nLunch-time gossip suggested a penalty model.\n"
            "12. Disgraced former MP Jonathan Aitken is alive and well.\nAnd seems to be considering it.\n"
            "14. A numbered sentence out of the run stays a paragraph.\n")
    kinds = [kind for kind, _ in text_blocks(text)]
    assert kinds == ["h", "p", "h", "p", "h", "p", "p"]
    assert [kind for kind, _ in text_blocks("3. A numbered sentence with no run before it.\n")] == ["p"]

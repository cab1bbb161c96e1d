"""Issue 12 acceptance on the dev set (tests/data/dev, a copy of ../shared/eval/dev): over the answers to
all 98 questions, no quote starts with a heading or a list marker or crosses a block, and every link's
terms lie inside one block of the post, textStart's first match in the quote's first block and textEnd
in its last."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockcheck import answer_problems
from conftest import make_services

pytestmark = pytest.mark.slow
DEV = Path(__file__).parent / "data" / "dev"


def test_dev_answers_respect_the_posts_blocks(tmp_path, onnx_cache):
    from pbrbot.evaluate import load_questions
    from pbrbot.sentences import PostText
    from pbrbot.ingest import ingest

    data = tmp_path / "data"
    data.mkdir()
    (data / "onnx").symlink_to(onnx_cache, target_is_directory=True)
    svc = make_services(data, embed_backend="onnx-int8")
    try:
        report = ingest(svc.store, svc.settings, [str(DEV / "archive.jsonl")])
        assert report.new == 84 and report.listings == 1 and not report.skipped
        svc.run_index(progress=False)
        questions = load_questions(DEV / "questions.jsonl")
        answers = [svc.answerer.ask(q["question"]).to_json_dict() for q in questions]
        counts = answer_problems(svc.store, answers)
        details = counts.pop("details")
        assert counts["quotes"] > 100  # most questions are answered with quotes to check
        assert {k: v for k, v in counts.items() if k != "quotes"} == {
            "quote_start": 0, "quote_crosses": 0, "link_term_crosses": 0, "link_misplaced": 0}, details
        listing = svc.store.get_post_by_url("https://www.russellwebster.com/category/pbr-2/page/8/")
        assert listing["kind"] == "listing"
        # A listing page's quote lies in one teaser (a heading and the blocks up to the next one) and is shown
        # under that teaser's title; before the first teaser, under the page's.
        page = PostText.from_row(listing)
        sections: dict[str, str] = {}
        title = listing["title"]
        for n, (kind, _, _) in enumerate(page.blocks):
            if kind == "h":
                title = f"{page.block_text(n)} (teaser on {listing['title']})"
            sections[title] = sections.get(title, "") + " " + " ".join(page.block_text(n).split())
        for quote in (q for a in answers for q in a["quotes"] if q["url"] == listing["url"]):
            assert quote["title"] in sections, quote
            assert all(part in sections[quote["title"]] for part in quote["text"].split(" … ")), quote
    finally:
        svc.close()

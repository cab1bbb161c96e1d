"""Sentences and passages: boundaries, offsets, sizes, no empty or chrome-only passages."""

from __future__ import annotations

import pytest

from pbrbot.chunking import MAX_WORDS, chunk_post, chunk_text, split_sentences
from pbrbot.models import content_hash
from pbrbot.sources.sample import sample_dir


def sentences(text):
    return [text[s:e] for s, e in split_sentences(text)]


@pytest.mark.parametrize("text, expected", [
    ("Mr. Smith paid £8.5m to the MoJ. It worked.", ["Mr. Smith paid £8.5m to the MoJ.", "It worked."]),
    ("Schemes, e.g. the Work Programme, failed. Others i.e. SIBs did not.",
     ["Schemes, e.g. the Work Programme, failed.", "Others i.e. SIBs did not."]),
    ("Did it work? Yes! “It did.” Then J. Bloggs spoke.",
     ["Did it work?", "Yes!", "“It did.”", "Then J. Bloggs spoke."]),
    ("A heading without a stop\n\nThe body starts here. It goes on.",
     ["A heading without a stop", "The body starts here.", "It goes on."]),
    ("Aims:\n• Stimulate innovation\n• Reduce costs. Save money", 
     ["Aims:", "• Stimulate innovation", "• Reduce costs.", "Save money"]),
    ("It rose 5.5% in 2013. In 2014 it fell.", ["It rose 5.5% in 2013.", "In 2014 it fell."]),
    ("Payment starts on 3 Jan. next year, said the Dept. of Health.", 
     ["Payment starts on 3 Jan. next year, said the Dept. of Health."]),
    ("the end... and more. Next one", ["the end... and more.", "Next one"]),
    ("", []),
    ("   \n\n  ", []),
])
def test_split_sentences(text, expected):
    assert sentences(text) == expected


def _sample_texts():
    from pbrbot.sources.dumps import read
    from pbrbot.sources import SourceContext
    from pbrbot.config import load_settings

    return [p.text for p in read(str(sample_dir()), SourceContext(settings=load_settings()))
            if hasattr(p, "text")]


def test_passages_of_the_sample_posts_are_exact_spans_of_sensible_size():
    texts = _sample_texts()
    assert len(texts) == 5
    for text in texts:
        passages = chunk_post(7, text)
        assert passages
        covered = set()
        for i, p in enumerate(passages):
            assert p.text == text[p.start:p.end] and p.text.strip() == p.text
            assert p.position == i and p.post_id == 7 and p.hash == content_hash(p.text)
            words = len(p.text.split())
            assert words <= MAX_WORDS * 5 // 4
            if len(passages) > 1:
                assert words >= 25, p.text
            covered.update(range(p.start, p.end))
        # every word of the post is in some passage
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
        assert [p.start for p in passages] == sorted(p.start for p in passages)


def test_a_cut_paragraph_repeats_its_last_sentence():
    sentence = "The pilot ran in six sites across Greater Manchester and London with good results. "
    text = (sentence * 40).strip()  # one long paragraph, ~560 words
    spans = chunk_text(text)
    assert len(spans) >= 3
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s2 < e1  # overlap


def test_headings_start_the_next_passage_rather_than_end_one():
    body = " ".join(f"Sentence number {i} talks about probation reform." for i in range(25))
    text = f"{body}\n\nThe payment structure\n\n{body}"
    spans = chunk_text(text)
    assert len(spans) == 2
    assert text[spans[1][0]:].startswith("The payment structure")


def test_no_empty_or_chrome_only_passages():
    assert chunk_text("") == []
    assert chunk_text("Share\n\nSearch\n\n• — •") == []
    assert chunk_text("Short post.") == [(0, 11)]


def test_a_huge_sentence_is_cut_at_word_boundaries():
    text = " ".join(["word"] * 1000)
    spans = chunk_text(text)
    assert all(len(text[s:e].split()) <= MAX_WORDS for s, e in spans)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_numbered_headings_stay_whole():
    text = "1. The rehabilitation revolution is going to happen\n\n2) And another. Then more."
    assert sentences(text) == ["1. The rehabilitation revolution is going to happen", "2) And another.",
                               "Then more."]

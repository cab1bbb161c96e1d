"""Text-fragment links: spec encoding, verbatim words, unambiguous start/end."""

from urllib.parse import unquote

import pytest

from pbrbot.fragments import decode_link, directive, encode_part, fragment_link

URL = "https://www.russellwebster.com/post/"


def test_reserved_characters_are_percent_encoded():
    assert encode_part("re-offending, jobs & more") == "re%2Doffending%2C%20jobs%20%26%20more"
    assert encode_part("“Cherry Picking”") == "%E2%80%9CCherry%20Picking%E2%80%9D"
    assert "-" not in encode_part("a-b") and "," not in encode_part("a,b")


def test_short_quote_is_linked_whole():
    link = fragment_link(URL + "#old", ["75% of all offenders are medium risk."])
    assert link.startswith(URL + "#:~:text=")
    assert decode_link(link) == ("75% of all offenders are medium risk.", None)


def test_long_quote_uses_start_and_end_words_from_the_text():
    quote = ("In the absence of new information, the debate has also become increasingly technical – "
             "exploring the arcana of whether “frequency” or “binary” measures are the best way to count "
             "re-offending, for example.")
    start, end = decode_link(fragment_link(URL, [quote], "Intro.\n\n" + quote))
    assert quote.startswith(start) and quote.endswith(end)
    assert len(start.split()) >= 4 and len(end.split()) >= 4


def test_start_words_grow_until_they_point_at_this_quote():
    page = ("The pilot ran for two years in London. Some other text here.\n\n"
            "The pilot ran for two years and then it was extended again for a third year by the ministry.")
    quote = "The pilot ran for two years and then it was extended again for a third year by the ministry."
    start, end = decode_link(fragment_link(URL, [quote], page))
    low = page.lower()
    assert low.find(start.lower()) == low.find(quote.lower())
    assert low.find(end.lower(), low.find(quote.lower())) + len(end) == len(page)


def test_ellipsis_cut_quotes_link_first_and_last_segment():
    value = directive(["First part of the quote that is long enough.", "Second part, ending here."])
    start, end = (unquote(p) for p in value.split(","))
    assert start == "First part of the" and end == "Second part, ending here."


def test_empty_quote_is_refused():
    with pytest.raises(ValueError):
        directive(["  "])

"""Reading a question: word stems (of questions and of posts' sentences), what kind of answer it wants, and
the two sides of a comparison. Pure but for caches."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache

from pbrbot.sentences import _WORD, PostText

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


# A question is read up to this many characters. The model reads at most 256 tokens of it (the dev
# questions' words: 256 tokens = 1,121 characters), so analysing more text would be work for nothing, and one
# very long question (a mention can carry 4,000 characters) would hold up the answers running beside it
# (BENCHMARKS.md, "One slow request and the others"). /ask takes at most 240.
QUESTION_CHARS = 1000


def read_part(question: str) -> str:
    """The question as read: spaces normalised, cut at a word's end within QUESTION_CHARS characters."""
    text = normalise(question)
    if len(text) <= QUESTION_CHARS:
        return text
    head = text[:QUESTION_CHARS + 1]
    return (head.rsplit(" ", 1)[0] if " " in head else head)[:QUESTION_CHARS]


_ORDINALS = dict(zip(("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
                      "tenth"), ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th"),
                     strict=True))


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A crude suffix stripper, applied alike to questions and sentences (run/runs/running match); ordinal
    words are written as numbers (sixth, 6th)."""
    w = word.lower().replace("’", "'")
    if w in _ORDINALS:
        return _ORDINALS[w]
    w = w.removesuffix("'s")
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""),
                         ("ly", ""), ("e", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            return w[: -len(suffix)] + repl
    return w


@lru_cache(maxsize=8192)  # the answerer asks it of the same few hundred texts several times per question
def word_stems(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in _WORD.findall(text))


def sentence_stems(post: PostText, i: int) -> frozenset[str]:
    """Word stems of the post's sentence i (kept with the post: an answer asks several times)."""
    key = ("stems", i)
    if key not in post.memo:
        post.memo[key] = word_stems(post.sentence(i))
    return post.memo[key]


def context_stems(post: PostText, i: int) -> frozenset[str]:
    """Word stems of sentence i's context (PostText.context), from its sentences' stems."""
    lo, hi = post.context_range(i)
    return frozenset().union(*(sentence_stems(post, j) for j in range(lo, hi + 1)))


def _extends(s: str, wanted: str) -> bool:
    """For words of 4+ letters: one stem extends the other (fail ~ failure, measur ~ measurement)."""
    if len(s) < 4 or len(wanted) < 4 or s[:4] != wanted[:4]:
        return False
    return len(os.path.commonprefix([s, wanted])) >= min(len(s), len(wanted)) - 1


def stem_families(wanted: Iterable[str], vocab: frozenset[str]) -> dict[str, frozenset[str]]:
    """For each wanted stem, the stems of `vocab` that stand for it: itself, or (for longer words) one
    extends the other (fail ~ failure). A set of stems drawn from vocab mentions a wanted stem when it
    meets that stem's family."""
    by_prefix: dict[str, list[str]] = {}
    for s in vocab:
        if len(s) >= 4:
            by_prefix.setdefault(s[:4], []).append(s)
    return {w: frozenset([w] if w in vocab else []).union(
        s for s in by_prefix.get(w[:4], ()) if _extends(s, w)) for w in wanted}


# -- what kind of answer a question wants -------------------------------------------------------
TYPE_BONUS = 0.04
_AMOUNT = re.compile(r"[£$€%]|\d|\b(million|billion|thousand|hundred|half|third|quarter|per ?cent)\b",
                     re.IGNORECASE)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+(?:of\s+)?[A-Z][a-z]+)+|@\w+")
_WHEN = re.compile(r"\b(1[89]\d\d|20\d\d|January|February|March|April|May|June|July|August|September|"
                   r"October|November|December|spring|summer|autumn|winter)\b")


def answer_type(question: str) -> re.Pattern | None:
    """What a question's answer looks like: an amount, a name (who, which areas), a time; else None."""
    q = question.lower()
    if re.search(r"\b(how (much|many|long|often|far)"
                 r"|what (percentage|proportion|share|fall|rise|number|amount)|what level)\b", q):
        return _AMOUNT
    if re.search(r"\b(who|whom|whose|which (areas?|organisations?|companies|providers?|sites?|places?|"
                 r"people|towns?|cities|regions?)|where)\b", q):
        return _NAME
    if re.search(r"\b(when|what year|what date|how soon)\b", q):
        return _WHEN
    return None


# -- comparisons -------------------------------------------------------------------------------
_BETWEEN = re.compile(r"\bdifference(?:s)? between (.+?) and (.+?)[?.!]*$", re.IGNORECASE)
_VERSUS = re.compile(r"\b(?:vs\.?|versus|v\.|compared (?:to|with))\s", re.IGNORECASE)
_SIDE_STOP = set("""a an the is are was were be being been do does did what which who whom how why when
where should would could will can may might of in on for to with about between than there it this that
we i you they their our my your compare comparison difference differences better worse
""".split())  # noqa: SIM905 - a word list reads best as text


def _side_words(words: list[str], from_end: bool) -> str:
    picked: list[str] = []
    for word in (reversed(words) if from_end else words):
        if word.lower().strip("?,.!") in _SIDE_STOP or len(picked) == 3:
            break
        picked.append(word.strip("?,.!\"“”"))
    if from_end:
        picked.reverse()
    return " ".join(p for p in picked if p)


def comparison_sides(question: str) -> list[str]:
    """["X", "Y"] for "X vs Y", "difference between X and Y", "X or Y" questions, else []."""
    q = question.strip()
    m = _BETWEEN.search(q)
    if m:
        return [normalise(m.group(1)), normalise(m.group(2)).rstrip("?.! ")]
    parts = _VERSUS.split(q, maxsplit=1)
    if len(parts) != 2:
        parts = re.split(r"\s+or\s+", q, maxsplit=1, flags=re.IGNORECASE)
    if len(parts) != 2:
        return []
    left, right = _side_words(parts[0].split(), from_end=True), _side_words(parts[1].split(), False)
    return [left, right] if left and right and left.lower() != right.lower() else []

"""Reading a follow-up question in the light of the earlier turns (no language model): `read` gives the
question as understood ("taken as"), `subject` what a question is about.

A follow-up is rewritten from the earlier turns:
- "and what about frequency?" after "what does binary mean?": the new subject takes the old one's place
  in the earlier question ("what does frequency mean?"); "what about in 2014?" adds to it;
- "who ran it?" after "how did the Peterborough bond work?": the pronoun becomes the earlier question's
  subject ("who ran the Peterborough bond?");
- a question too short to stand alone ("what were the results?") gets that subject added;
- "and in 2016?" asks the earlier question again for that period, and a follow-up keeps the period the
  earlier question named (timeframe.py reads periods).
The subject of a question is, in order: a capitalised name with the nouns after it ("the Peterborough
bond"), a glossary term as written ("binary"), else its longest run of content words; failing all, the
glossary terms and names in the titles of the posts it quoted. A question that names its own subject
stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pbrbot import timeframe
from pbrbot.glossary import Glossary, form_pattern
from pbrbot.keywords import STOPWORDS
from pbrbot.questions import normalise
from pbrbot.turns import MAX_TURNS, Turn

_WORDS = re.compile(r"[\w’'-]+")
_OPENER = re.compile(r"^(?:(?:and|but|so|ok(?:ay)?|then|also|right|hmm|well)\b[,\s]*)+", re.IGNORECASE)
_ELLIPSIS = re.compile(r"^(?:what|how)\s+about\s+(?P<x>.+?)[?.!\s]*$|^what\s+of\s+(?P<y>.+?)[?.!\s]*$",
                       re.IGNORECASE)
_ANAPHOR = re.compile(r"\b(?P<w>its|their|his|her|it|they|them|this|that|these|those|he|him|she|there|"
                      r"the\s+(?:scheme|pilot|project|programme|program|bond|report|study|policy|reform|reforms|"
                      r"contract|contracts|measure|scheme's|pilot's|initiative|trial|idea|approach|model))\b",
                      re.IGNORECASE)
_QUESTION_WORDS = frozenset(["what", "which", "who", "whom", "whose", "how", "why", "when", "where", "is",
                             "are", "was", "were", "do", "does", "did", "can", "could", "should", "would",
                             "will", "has", "have", "had", "tell", "explain", "describe"])
# Words that say what is asked, not what about: never a question's subject (nor, for
# conversation.over_time, what two quotes have in common).
GENERIC = STOPWORDS | frozenset(["tell", "explain", "mean", "means", "meant", "meaning", "say", "says",
                                 "said", "know", "think", "thought", "anything", "something", "thing",
                                 "things", "please", "blog", "archive", "post", "posts", "author",
                                 "writer", "else", "more", "also", "really", "exactly", "happen",
                                 "happened", "happening", "work", "works", "worked", "working", "run",
                                 "ran", "running", "start", "started", "end", "ended", "cost", "costs",
                                 "show", "shows", "showed", "find", "found", "get", "got", "go", "went",
                                 "pay", "paid", "give", "gave", "make", "made", "like", "define",
                                 "definition", "describe", "one", "ones", "much", "many", "someone",
                                 "somebody", "people", "way", "ways", "kind", "sort", "type", "lot",
                                 "lots", "result", "results"])
# Words that end a name's noun phrase ("the Peterborough bond work" stops before "work").
_NP_STOP = GENERIC | frozenset(["compare", "compared", "measure", "measured", "succeed", "succeeded",
                                "fail", "failed", "help", "helped", "reduce", "reduced", "affect",
                                "affected", "change", "changed"])
_PREPOSITION = re.compile(r"^(?:in|at|for|with|on|during|under|over|before|after|since|among|across|by|"
                          r"from|outside|inside)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Subject:
    text: str  # as written in the question, with its article ("the Peterborough bond")
    bare: str  # without it ("Peterborough bond")
    start: int = -1  # where `bare` is in the question
    end: int = -1


@dataclass(frozen=True)
class Reading:
    question: str  # what to answer
    taken_as: str | None  # set when the earlier turns changed the question
    follow_up: bool


def _tokens(text: str) -> list[re.Match]:
    return list(_WORDS.finditer(text))


def _is_name(word: str, first: bool) -> bool:
    if not word[:1].isupper():
        return False
    if first and word.lower() in _QUESTION_WORDS | STOPWORDS:
        return False
    return word.lower() not in {"i"}


_CONNECT = ("of the", "of", "for the", "for", "and the", "and", "on the", "on")
_AUX = re.compile(r"^(?:how|what|why|where|when|who)?\s*(?:did|does|do|has|have|had)\b", re.IGNORECASE)


def _connector(toks: list[re.Match], j: int) -> int:
    """How many tokens from j join two parts of one name or phrase ("of the", "for", ...), else 0."""
    for c in _CONNECT:
        words = c.split()
        if [t.group().lower() for t in toks[j:j + len(words)]] == words:
            return len(words)
    return 0


def _possessive(word: str) -> bool:
    return word.lower().endswith(("'s", "’s"))


def _span(text: str, toks: list[re.Match], i: int, k: int) -> Subject:
    start, end = toks[i].start(), toks[k - 1].end()
    if _possessive(toks[k - 1].group()):
        end -= 2
    bare = text[start:end]
    before = text[:start].rstrip()
    low = before.lower()
    article = next((a for a in ("the", "a", "an") if low.endswith(" " + a) or low == a), None)
    shown = f"{before[len(before) - len(article):]} {bare}" if article else bare
    return Subject(shown.strip(), bare, start, end)


def _span_chars(text: str, start: int, end: int) -> Subject:
    toks = _tokens(text)
    i = next(n for n, t in enumerate(toks) if t.end() > start)
    k = max(n for n, t in enumerate(toks) if t.start() < end) + 1
    return _span(text, toks, i, k)


def _verb_last(text: str, toks: list[re.Match], k: int) -> bool:
    """Whether token k-1 is the verb of a "how did X perform?" question (the last word, or before a
    particle)."""
    if not _AUX.match(text.strip()):
        return False
    rest = [t.group().lower() for t in toks[k:]]
    return not rest or rest in (["out"], ["up"], ["off"], ["on"])


def _names(text: str) -> list[Subject]:
    """Capitalised names (and acronyms) with the nouns that follow them: "the Peterborough bond"."""
    toks = _tokens(text)
    out: list[Subject] = []
    i = 0
    while i < len(toks):
        if not _is_name(toks[i].group(), i == 0):
            i += 1
            continue
        j = i + 1
        while j < len(toks):
            if _possessive(toks[j - 1].group()):
                break
            if _is_name(toks[j].group(), False):
                j += 1
                continue
            c = _connector(toks, j)
            if c and j + c < len(toks) and _is_name(toks[j + c].group(), False):
                j += c + 1
                continue
            break
        k = j
        while k < len(toks) and k - j < 3 and not _possessive(toks[k - 1].group()) \
                and toks[k].group().lower() not in _NP_STOP and not toks[k].group()[:1].isupper() \
                and not toks[k].group().isdigit():
            k += 1
        if k > j and _verb_last(text, toks, k):
            k -= 1
        out.append(_span(text, toks, i, k))
        i = k
    return out


def _terms(text: str, glossary: Glossary | None) -> list[Subject]:
    """Glossary terms as written in the text, in the order they come."""
    if glossary is None:
        return []
    out = []
    for term in glossary.mentioned(text):
        for form in sorted(term.forms, key=len, reverse=True):
            m = re.search(form_pattern(form), text, re.IGNORECASE)
            if m:
                out.append((m.start(), Subject(m.group(), m.group(), m.start(), m.end())))
                break
    return [s for _, s in sorted(out, key=lambda x: x[0])]


def _phrases(text: str) -> list[Subject]:
    """Runs of content words, joined across "of"/"for" ("interactive tool for payment by results")."""
    toks = _tokens(text)
    out = []
    i = 0
    content = lambda w: w.lower() not in GENERIC and not w.isdigit()
    while i < len(toks):
        if not content(toks[i].group()):
            i += 1
            continue
        k = i
        while True:
            while k < len(toks) and content(toks[k].group()) \
                    and not (k > i and _possessive(toks[k - 1].group())):
                k += 1
            c = _connector(toks, k)
            if c and c <= 2 and toks[k].group().lower() in ("of", "for") and k + c < len(toks) \
                    and content(toks[k + c].group()):
                k += c
                continue
            break
        if k > i + 1 and _verb_last(text, toks, k):
            k -= 1
        out.append(_span(text, toks, i, k))
        i = max(k, i + 1)
    return out


def subject(text: str, glossary: Glossary | None) -> Subject | None:
    """What a question is about (see the module's docstring), or None."""
    names = _names(text)
    if names:
        return max(names, key=lambda s: len(s.bare))
    terms = _terms(text, glossary)
    phrases = _phrases(text)
    if terms:  # the phrase the first term is part of, taken to the term's end
        term = terms[0]
        around = [p for p in phrases if p.start < term.end and term.start < p.end]
        if not around:
            return term
        start = min(around[0].start, term.start)
        return _span_chars(text, start, max(around[0].end, term.end))
    return max(phrases, key=lambda s: len(s.bare)) if phrases else None


def _swappable(text: str, glossary: Glossary | None) -> Subject | None:
    """The part of an earlier question a "what about X?" replaces: its first glossary term, else its
    subject."""
    terms = _terms(text, glossary)
    return terms[0] if terms else subject(text, glossary)


def _kind(text: str, glossary: Glossary | None) -> str:
    """"term" (a glossary term), "name" (capitalised) or "words"."""
    if _terms(text, glossary):
        return "term"
    return "name" if _names(text) else "words"


def _names_itself(text: str, glossary: Glossary | None) -> bool:
    """Whether a question names its own subject (a name or a glossary term)."""
    return bool(_names(text) or _terms(text, glossary))


def _content_words(text: str) -> list[str]:
    return [t.group() for t in _tokens(text) if t.group().lower() not in GENERIC and not t.group().isdigit()]


def _title_subject(turn: Turn, glossary: Glossary | None) -> Subject | None:
    for quote in turn.quotes:
        title = quote.get("title") or ""
        found = _names(title) or _terms(title, glossary)
        if found:
            return max(found, key=lambda s: len(s.bare))
    return None


def _context_subject(turns: Sequence[Turn], glossary: Glossary | None) -> Subject | None:
    for turn in reversed(turns):  # a name or term asked about, else one in a quoted title, else words
        text = turn.understood
        found = (subject(text, glossary) if _names_itself(text, glossary) else None) \
            or _title_subject(turn, glossary) or subject(text, glossary)
        if found:
            return found
    return None


def _end(text: str) -> str:
    return text.rstrip(" ?.!")


def _anaphor(text: str) -> re.Match | None:
    """The first pronoun standing for the earlier subject: not "there" in "are there", not a "this" that is
    a determiner ("this report")."""
    toks = _tokens(text)
    for m in _ANAPHOR.finditer(text):
        word = m.group("w").lower()
        after = next((t.group().lower() for t in toks if t.start() >= m.end()), "")
        before = [t.group().lower() for t in toks if t.end() <= m.start()]
        if word == "there" and before and before[-1] in ("is", "are", "was", "were", "be", "been"):
            continue
        if word in ("this", "that", "these", "those") and after and after not in GENERIC:
            continue
        return m
    return None


def read(question: str, turns: Sequence[Turn], glossary: Glossary | None) -> Reading:
    """The question as understood in the light of the earlier turns (most recent last)."""
    question = normalise(question)
    turns = list(turns)[-MAX_TURNS:]
    if not turns or not question:
        return Reading(question, None, False)
    core = _OPENER.sub("", question).strip() or question
    prev = turns[-1].understood
    when = timeframe.phrases(prev)
    bare = _ELLIPSIS.match(core)
    asked = _end(bare.group("x") or bare.group("y") or "") if bare else core
    if timeframe.phrases(asked) and not _content_words(timeframe.parse(asked)[1] if timeframe.parse(asked)[0]
                                                       else asked):  # "and in 2016?": the same, then
        base = timeframe.parse(prev)[1] if when else prev
        taken = f"{_end(base)} {_end(asked)}?"
        return Reading(taken, taken, True)
    reading = _read(core, prev, turns, glossary)
    if reading.follow_up and when and not timeframe.phrases(reading.question):  # keep the earlier period
        taken = f"{_end(reading.question)} {' '.join(when)}?"
        return Reading(taken, taken, True)
    return reading if reading.follow_up else Reading(question, None, False)


def _read(core: str, prev: str, turns: list[Turn], glossary: Glossary | None) -> Reading:
    m = _ELLIPSIS.match(core)
    if m:  # "what about X?"
        new = _end(m.group("x") or m.group("y") or "")
        old = _swappable(prev, glossary)
        if old is not None and old.text.lower() in prev.lower() and not _PREPOSITION.match(new) \
                and _kind(old.text, glossary) == _kind(new, glossary):  # one term for another: swap them
            at = prev.lower().index(old.text.lower())
            taken = prev[:at] + new + prev[at + len(old.text):]
        elif _PREPOSITION.match(new):  # "what about in 2014?": add it
            taken = f"{_end(prev)} {new}?"
        else:  # another aspect of the same question
            taken = f"{_end(prev)}: {new}?"
        return Reading(taken, taken, True)
    context = _context_subject(turns, glossary)
    if context is None or context.bare.lower() in core.lower():
        return Reading(core, None, False)
    a = _anaphor(core)
    if a is None and _names_itself(core, glossary):
        return Reading(core, None, False)
    if a:  # "who ran it?"
        word = a.group("w").lower()
        if word in ("its", "their", "his", "her"):
            put = f"{context.text}'s"
        elif word == "there":
            put = f"at {context.text}"
        else:
            put = context.text
        taken = core[:a.start()] + put + core[a.end():]
        taken = taken[:1].upper() + taken[1:]
        return Reading(taken, taken, True)
    if len(_content_words(core)) <= 2:  # "what were the results?"
        taken = f"{_end(core)} ({context.bare})?"
        taken = taken[:1].upper() + taken[1:]
        return Reading(taken, taken, True)
    return Reading(core, None, False)


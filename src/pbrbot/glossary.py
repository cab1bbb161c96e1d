"""The curated jargon of PbR and criminal justice (glossary.toml): lookup, autocomplete, query expansion.

Definition mining (which archive sentences explain each term) lives in definitions.py.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

from pbrbot.errors import PbrbotError
from pbrbot.keywords import STOPWORDS


@dataclass(frozen=True)
class Term:
    name: str
    aliases: tuple[str, ...] = ()
    expansion: str = ""
    gloss: str = ""

    @property
    def forms(self) -> tuple[str, ...]:
        """The name and every alias."""
        return (self.name, *self.aliases)

    def as_dict(self) -> dict:
        return {"name": self.name, "aliases": list(self.aliases), "expansion": self.expansion,
                "gloss": self.gloss}


def key(text: str) -> str:
    """How names are compared: lower case, hyphens as spaces, single spaces."""
    return " ".join(re.sub(r"[-‐‑–]", " ", text).lower().split())


# The non-ASCII characters that re.IGNORECASE matches with an ASCII character (İ ı ſ and the Kelvin sign;
# found by trying every code point against [\x00-\x7f]).
_ASCII_LOOKALIKES = "\u0130\u0131\u017f\u212a"

# Words of a question that asks what a term means or how two terms differ (Glossary.asked_about).
_MEANING_WORDS = frozenset({
    "actually", "are", "between", "compare", "compared", "comparison", "define", "defined",
    "definition", "definitions", "differ", "difference", "differences", "different", "do", "does",
    "exactly", "explain", "explained", "explanation", "is", "jargon", "mean", "meaning", "meanings",
    "means", "meant", "measure", "measurement", "measurements", "measures", "please", "s", "term",
    "terms", "v", "versus", "vs", "was", "what", "whats", "word"
})
_MEANING_CUES = frozenset({
    "define", "definition", "differ", "difference", "differences", "explain", "mean", "meaning",
    "means", "v", "versus", "vs", "what", "whats"
})
_OTHER_QUESTIONS = frozenset({
    "can", "could", "did", "doing", "done", "how", "should", "when", "where", "which", "who", "whom",
    "why", "will", "would"
})


def form_pattern(form: str) -> str:
    words = [re.escape(w) for w in key(form).split()]
    body = r"[\s\-‐‑–]+".join(words)
    plural = "" if body.endswith("s") else "(?:s|es)?"
    return rf"(?<![\w-]){body}{plural}(?![\w-])"


@dataclass
class Glossary:
    items: list[Term] = field(default_factory=list)
    _mentioned: dict[str, tuple[Term, ...]] = field(default_factory=dict, repr=False, compare=False)
    _compiled: dict[tuple[str, int], re.Pattern] = field(default_factory=dict, repr=False, compare=False)

    def terms(self) -> list[Term]:
        return sorted(self.items, key=lambda t: t.name.lower())

    @cached_property
    def _by_key(self) -> dict[str, Term]:
        index: dict[str, Term] = {}
        for term in self.items:
            for form in term.forms:
                index.setdefault(key(form), term)
        return index

    def get(self, name_or_alias: str) -> Term | None:
        """The term with this name or alias (case- and hyphen-insensitive), else None."""
        text = key(name_or_alias)
        return self._by_key.get(text) or self._by_key.get(text.rstrip("s"))

    @cached_property
    def _forms(self) -> list[tuple[Term, str, str, str, int]]:
        """(term, the form, its first word in lower case, regex, flags) for every name and alias, in glossary
        order. A regex is compiled when a text first holds its first word: compiling all ~190 took ~80 ms,
        a large part of a cold `pbrbot ask`."""
        out = []
        for term in self.items:
            for form in term.forms:
                short_acronym = len(form) <= 2 and form.isupper()
                flags = 0 if short_acronym else re.IGNORECASE
                pattern = form_pattern(form) if not short_acronym \
                    else rf"(?<![\w-]){re.escape(form)}(?![\w-])"
                out.append((term, form, (key(form).split() or [""])[0], pattern, flags))
        return out

    def _regex(self, pattern: str, flags: int) -> re.Pattern:
        """A form's regex, compiled once."""
        regex = self._compiled.get((pattern, flags))
        if regex is None:
            regex = self._compiled[pattern, flags] = re.compile(pattern, flags)
        return regex

    def mentioned(self, text: str) -> list[Term]:
        """The terms named (by name or alias) in `text`, in glossary order, each once."""
        cached = self._mentioned.get(text)
        if cached is None:
            # A form matches only where its first word is, ignoring case; unless the text holds one of
            # the four non-ASCII letters that re's IGNORECASE equates with an ASCII one: then every
            # regex is tried.
            lower = None if any(c in text for c in _ASCII_LOOKALIKES) else text.lower()
            found: dict[Term, None] = {}
            for term, _, word, pattern, flags in self._forms:
                if term in found or (lower is not None and word.isascii() and word not in lower):
                    continue
                if self._regex(pattern, flags).search(text):
                    found[term] = None
            cached = tuple(found)
            if len(self._mentioned) > 1024:  # an answer asks about the same few texts several times
                self._mentioned.clear()
            self._mentioned[text] = cached
        return list(cached)

    def asked_about(self, question: str) -> list[Term]:
        """The terms a question asks the meaning of ("what is binary vs frequency measurement", "what does
        PbR mean?", "define parking"): the terms it names, when nothing is left of it but them, words that
        ask for a meaning or a difference, and stopwords. A question about something else that happens to
        name a term ("how did the Peterborough SIB do?") asks about none."""
        terms = [t for t in self.mentioned(question) if t.gloss]
        if not terms:
            return []
        rest = question
        for term in terms:  # each term's forms, longest first, matched as `mentioned` matches them
            forms = sorted((f for f in self._forms if f[0] is term), key=lambda f: len(f[1]), reverse=True)
            for _, _, _, pattern, flags in forms:
                rest = self._regex(pattern, flags).sub(" ", rest)
        words = re.findall(r"[a-z]+", rest.lower())
        if words and not set(words) & _MEANING_CUES:
            return []
        return terms if all((w in STOPWORDS and w not in _OTHER_QUESTIONS) or w in _MEANING_WORDS
                            for w in words) else []

    def expand(self, query: str) -> str:
        """The query plus the name and expansion of each term it mentions (acronyms spelled out, full
        names abbreviated), for retrieval. Words already in the query are not repeated."""
        have = set(re.findall(r"\w+", query.lower()))
        extra: list[str] = []
        for term in self.mentioned(query):
            for words in (term.name, term.expansion):
                new = [w for w in re.findall(r"[\w'-]+", words) if w.lower() not in have]
                if new:
                    have.update(w.lower() for w in new)
                    extra.extend(new)
        return f"{query} {' '.join(extra)}".strip() if extra else query

    def suggest(self, text: str, limit: int = 25) -> list[str]:
        """Term names for autocomplete, or the nearest known terms to an unknown one (best first)."""
        needle = key(text)
        if not needle:
            return [t.name for t in self.terms()][:limit]
        scored: dict[str, float] = {}
        for term in self.items:
            best = 0.0
            for form in term.forms:
                form_key = key(form)
                if form_key == needle:
                    score = 4.0
                elif form_key.startswith(needle):
                    score = 3.0
                elif any(w.startswith(needle) for w in form_key.split()):
                    score = 2.5
                elif needle in form_key:
                    score = 2.0
                else:
                    score = difflib.SequenceMatcher(None, needle, form_key).ratio()
                    if len(needle) >= 5:  # a misspelt beginning, for autocomplete
                        head = form_key[: len(needle)]
                        score = max(score, difflib.SequenceMatcher(None, needle, head).ratio() - 0.05)
                best = max(best, score + (0.01 if form == term.name else 0.0))
            if best >= 0.7:
                scored[term.name] = best
        return sorted(scored, key=lambda name: (-scored[name], name.lower()))[:limit]


def default_path() -> Path:
    return Path(str(resources.files("pbrbot") / "glossary.toml"))


def load_glossary(path: Path | str | None = None) -> Glossary:
    """Read a glossary file (default: the packaged glossary.toml)."""
    path = Path(path) if path else default_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PbrbotError(f"cannot read glossary {path}: {exc}") from None
    items = []
    for n, raw in enumerate(data.get("term", []), start=1):
        if not isinstance(raw, dict) or not str(raw.get("name", "")).strip():
            raise PbrbotError(f"glossary {path}: term {n} has no name")
        items.append(Term(name=raw["name"].strip(), aliases=tuple(a.strip() for a in raw.get("aliases", [])),
                          expansion=raw.get("expansion", "").strip(), gloss=raw.get("gloss", "").strip()))
    return Glossary(items)

"""The composition root: builds settings, store, embedder, glossary, searcher and answerer once, each from
the parts it needs, and hands them out typed; shared by the CLI and the bot (the "faces", the only other
code that takes a Services). Tests and the bench hand in ready parts instead of building them."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbrbot.config import PACKAGED_MODEL, Settings
from pbrbot.store import ArchiveError, ArchiveMissing, Store, open_store

if TYPE_CHECKING:
    from pbrbot.answer import Answerer
    from pbrbot.conversation import Conversation
    from pbrbot.embedding import Embedder
    from pbrbot.glossary import Glossary
    from pbrbot.indexer import IndexStats
    from pbrbot.search import Searcher
    from pbrbot.tuning import Answers

log = logging.getLogger(__name__)


class Services:
    """Lazily built parts of the engine. Nothing heavy happens until a part is first used; a part is built
    once even when several threads ask for it at once."""

    def __init__(self, settings: Settings, readonly: bool = False, *, store: Store | None = None,
                 embedder: Embedder | None = None, glossary: Glossary | None = None,
                 searcher: Searcher | None = None, answerer: Answerer | None = None):
        """`readonly`: open the archive read-only (it must exist); see `writable`. The other keywords are
        ready parts to use instead of building them (tests, the bench); a part given is not closed here."""
        self.settings = settings
        self.readonly = readonly
        self._store, self._embedder, self._glossary = store, embedder, glossary
        self._searcher, self._answerer = searcher, answerer
        self._conversation: Conversation | None = None
        self._answers: Answers | None = None
        self._owned: set[str] = set()  # the parts built here, closed by close()
        self._building = threading.RLock()  # a part is built once, whichever thread asks first
        if settings.model == PACKAGED_MODEL:  # ships in a package: never ask the Hub (another model may)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def _part(self, name: str, build: Callable[[], Any]) -> Any:
        part = getattr(self, f"_{name}")
        if part is None:
            with self._building:
                part = getattr(self, f"_{name}")
                if part is None:
                    part = build()
                    setattr(self, f"_{name}", part)
                    self._owned.add(name)
        return part

    @property
    def store(self) -> Store:
        store: Store = self._part("store", lambda: open_store(self.settings.data_dir, readonly=self.readonly))
        return store

    def writable(self) -> Store:
        """The store opened for writing, reopened if it was opened read-only: for a reading command that must
        first build its archive or index."""
        with self._building:
            if self.readonly:
                old, self._store = self._store, None
                if old is not None and "store" in self._owned:
                    # the parts built on the read-only store go with it (built again on first use)
                    if "searcher" in self._owned and self._searcher is not None:
                        self._searcher.close()
                        self._searcher = None
                    for part in ("answerer", "answers", "conversation"):
                        if part in self._owned:
                            setattr(self, f"_{part}", None)
                    old.close()
                self.readonly = False
        return self.store

    @property
    def embedder(self) -> Embedder:
        from pbrbot.embedding import load_embedder

        embedder: Embedder = self._part("embedder", lambda: load_embedder(self.settings))
        return embedder

    @property
    def glossary(self) -> Glossary:
        from pbrbot.glossary import load_glossary

        glossary: Glossary = self._part("glossary", load_glossary)
        return glossary

    def _search_glossary(self) -> Glossary | None:
        try:
            return self.glossary
        except Exception as exc:  # noqa: BLE001 - a missing or broken glossary must not stop search
            log.warning("glossary unavailable, searching without acronym expansion: %s", exc)
            return None

    @property
    def searcher(self) -> Searcher:
        from pbrbot.embedding import embedder_name
        from pbrbot.search import Searcher
        from pbrbot.vectors import Manifest, check_compatible

        def build() -> Searcher:
            data_dir, name = Path(self.settings.data_dir), embedder_name(self.settings)
            manifest = Manifest.read(data_dir)
            if manifest is not None:  # an index of another model or backend: say so before loading the model
                check_compatible(manifest, name, None)
            return Searcher(self.store, self.embedder, data_dir, name, glossary=self._search_glossary())

        searcher: Searcher = self._part("searcher", build)
        return searcher

    @property
    def answerer(self) -> Answerer:
        from pbrbot.answer import Answerer

        answerer: Answerer = self._part(
            "answerer", lambda: Answerer(self.searcher, self.store, self.embedder, self.glossary))
        return answerer

    @property
    def conversation(self) -> Conversation:
        from pbrbot.conversation import Conversation

        conversation: Conversation = self._part(
            "conversation", lambda: Conversation(self.answers, self.store, self.glossary, self.searcher))
        return conversation

    @property
    def answers(self) -> Answers:
        """The answerer with the moderators' curation and the readers' votes applied (tuning.py)."""
        from pbrbot.tuning import Answers

        answers: Answers = self._part(
            "answers", lambda: Answers(self.store, self.answerer, lambda: self.embedder, self.glossary))
        return answers

    # -- what the faces run ---------------------------------------------------------------------
    def run_index(self, rebuild: bool = False, progress: bool = True, store: Store | None = None,
                  **options: Any) -> IndexStats:
        """`pbrbot index`: the model is loaded only when something is to be embedded, and this process's
        searcher (when built) searches the new index at once. `store`: the archive's store to index through
        (default: this one), for a thread that may outlive this one (an alerts poll at shutdown)."""
        from pbrbot.indexer import run_index

        searcher = self._searcher
        return run_index(store or self.store, lambda: self.embedder, self.settings, rebuild=rebuild,
                         progress=progress, on_saved=searcher.use_vectors if searcher is not None else None,
                         **options)

    def ensure_index(self, echo: Callable[[str], None] = print) -> None:
        """Make a newcomer's first command work: an empty archive gets the sample, an unindexed one an index;
        posts ingested since the last index run are named, with what to run.

        A reading command's archive (readonly) is opened for writing only when it can be written; a missing
        one is made only in an existing directory (or the default data directory)."""
        from pbrbot.ingest import ingest_sample
        from pbrbot.passages import count_stale
        from pbrbot.vectors import Manifest

        data_dir = Path(self.settings.data_dir)
        db = self.settings.db_path
        if self.readonly:
            if not db.is_file():
                if not data_dir.parent.is_dir() and "data_dir" in self.settings.model_fields_set:
                    raise ArchiveMissing(f"there is no archive in {data_dir} and no directory "
                                         f"{data_dir.parent} to make one in: check --data-dir (or "
                                         "PBRBOT_DATA_DIR)")
                self.writable()
            elif os.access(db, os.W_OK) and os.access(data_dir, os.W_OK):
                self.writable()
        store = self.store
        where = f" in {data_dir}"
        if store.count_posts() == 0:
            if store.readonly:
                raise ArchiveError(f"the archive{where} is empty and read-only: run `pbrbot ingest` where it "
                                   "can be written, or choose another --data-dir")
            echo(f"The archive{where} is empty: loading the sample archive (5 posts) and indexing it…")
            ingest_sample(store, self.settings)
            self.run_index(progress=False)
        elif (manifest := Manifest.read(data_dir)) is None:
            if store.readonly:
                raise ArchiveError(f"the archive{where} has no search index and is read-only: run "
                                   "`pbrbot index` where it can be written")
            echo(f"The archive{where} has no search index yet: indexing it "
                 "(run `pbrbot index` after each ingest)…")
            self.run_index(progress=False)
        else:
            missing = count_stale(store)
            if missing:
                echo(f"{missing} posts are not indexed yet: run `pbrbot index` (answering from the others)")
            elif (unembedded := store.count_passages() - manifest.count) > 0:
                echo(f"{unembedded} passages have no vectors yet (an index run was stopped?): run "
                     "`pbrbot index` (answering from the others)")

    def close(self) -> None:
        """Close the parts built here (not those handed in)."""
        if "searcher" in self._owned and self._searcher is not None:
            self._searcher.close()
        if "store" in self._owned and self._store is not None:
            self._store.close()

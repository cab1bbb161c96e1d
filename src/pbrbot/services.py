"""Builds settings, store, embedder, vector index, searcher and answerer once; shared by the CLI and the bot."""

from __future__ import annotations

import os
from functools import cached_property

from pbrbot.config import PACKAGED_MODEL, Settings
from pbrbot.store import Store, open_store


class Services:
    """Lazily built parts of the engine. Nothing heavy happens until a part is first used."""

    def __init__(self, settings: Settings, readonly: bool = False):
        """`readonly`: open the archive read-only (it must exist); see `writable`."""
        self.settings = settings
        self.readonly = readonly
        if settings.model == PACKAGED_MODEL:  # ships in a package: never ask the Hub (another model may)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.data_dir, readonly=self.readonly)

    def writable(self) -> Store:
        """The store opened for writing, reopened if it was opened read-only: for a reading command that must
        first build its archive or index."""
        if self.readonly:
            self.__dict__.pop("answers", None)
            old = self.__dict__.pop("store", None)
            if old is not None:
                old.close()
            self.readonly = False
        return self.store

    @cached_property
    def embedder(self):
        from pbrbot.embedding import load_embedder

        return load_embedder(self.settings)

    @cached_property
    def glossary(self):
        from pbrbot.glossary import load_glossary

        return load_glossary()

    @cached_property
    def searcher(self):
        from pbrbot.search import Searcher

        return Searcher(self)

    @cached_property
    def answerer(self):
        from pbrbot.answer import Answerer

        return Answerer(self)

    @cached_property
    def answers(self):
        """The answerer with the moderators' curation and the readers' votes applied (tuning.py)."""
        from pbrbot.tuning import Answers

        return Answers(self.store, self.answerer, lambda: self.embedder, self.glossary)

    def for_thread(self, store: Store) -> Services:
        """These services for a worker thread that brings its own SQLite connection (`store`): the settings,
        the model and the searcher (an index run hands it the new vectors) are shared, the connection is not.
        Close `store` when done; nothing else here is the view's to close."""
        view = Services(self.settings)
        view.__dict__.update(store=store, embedder=self.embedder)
        if "searcher" in self.__dict__:
            view.__dict__["searcher"] = self.searcher
        return view

    def close(self) -> None:
        if "searcher" in self.__dict__:
            self.searcher.close()
        if "store" in self.__dict__:
            self.store.close()

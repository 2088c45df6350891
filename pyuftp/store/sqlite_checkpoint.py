"""Checkpoints of a SQLite store's write-ahead log on a thread of their own.

In WAL mode SQLite copies the log into the database file (a *checkpoint*) by itself when a
commit leaves the log 1000 pages long; that commit then also syncs the log and the file to
disk (with ``synchronous=NORMAL``, the only syncs there are). A store that runs its calls on
the event loop stalls the loop for those syncs: with SQLite's automatic checkpoints, COMMIT
was the largest single cost of a service's store (bench/disk.py, py-spy in bench/soak.py).

:class:`Checkpointer` runs them instead on a daemon thread with its own connection to the
file, every ``interval`` seconds (``PRAGMA wal_checkpoint(PASSIVE)``: it copies what is
committed and waits for no one; SQLite releases the GIL meanwhile). Durability is the same:
a commit is in the log when it returns, whoever checkpoints later. The store's own
connection keeps an automatic checkpoint as a backstop, at :data:`BACKSTOP_PAGES`, so the log
stays bounded if this thread ever falls behind.
"""
from __future__ import annotations

import logging
import sqlite3
import threading

from .sqlite_file import describe

logger = logging.getLogger("pyuftp.store.sqlite")

#: the store connection's own automatic checkpoint, when the log is this long (pages)
BACKSTOP_PAGES = 8000


class Checkpointer:
    """A daemon thread checkpointing the WAL of ``path`` every ``interval`` seconds; the
    ``store`` connection's own automatic checkpoint is set to the backstop."""

    def __init__(self, path: str, store: sqlite3.Connection, interval: float = 0.5,
                 busy_timeout: float = 10.0) -> None:
        self.path, self.interval = path, interval
        store.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")  # the backstop
        self._stop = threading.Event()
        self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        self._thread = threading.Thread(target=self._run, name="pyuftp-sqlite-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval):
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                failing = False
            except sqlite3.Error as exc:  # e.g. the disk is full: the backstop takes over
                if not failing:
                    logger.warning("%s: checkpoint failed: %s", self.path, describe(exc))
                failing = True

    def close(self) -> None:
        """Stop the thread (after a checkpoint in progress) and close its connection."""
        self._stop.set()
        self._thread.join()
        try:
            self._conn.close()
        except sqlite3.Error as exc:
            logger.warning("%s: closing the checkpoint connection: %s", self.path, describe(exc))

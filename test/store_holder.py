"""Opens a SQLite store, commits one item, says so and holds the store open: the other
process of test_store.py's lock tests (which kill it)."""
from __future__ import annotations

import sys
import time

from pyuftp.store import OutboxItem, SQLiteStore

if __name__ == "__main__":
    store = SQLiteStore(sys.argv[1])
    store.add_outgoing(OutboxItem("held", "FlexOffer", "a", "b", "DSO", b"x", 1.0, 2.0))
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))  # bounded: a forgotten holder ends by itself

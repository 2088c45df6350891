"""The one-process lock of a SQLite store file, keyed on the file (device and inode), not on
its name; and the check that the file is still where it was opened."""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time

from ..exceptions import StoreError

logger = logging.getLogger(__name__)

# The store files this process holds, by (st_dev, st_ino): a second store object on one of
# them is refused before it opens the file at all. (Closing any descriptor of a file drops
# every POSIX lock this process holds on it, SQLite's included: so no second descriptor.)
_HELD: dict[tuple[int, int], str] = {}
_HELD_LOCK = threading.RLock()  # reentrant: __del__ may run while it is held
SCAN_LIMIT = 10_000  # folder entries searched for other names of a hard-linked store file
CHECK_INTERVAL = 1.0  # seconds between two looks at whether the file is still at its path


class FileLock:
    """The one-process lock of a store file, keyed on the file itself, not on its name.

    An exclusive ``flock`` on the database file: it follows the inode, so a hard link, a
    symlink or a new name of the file is the same file and is refused while another process
    (or another store object of this process) has it; the OS drops it when the process dies,
    whatever way it dies. ``<path>.lock`` (0600) only says who holds it: our pid and the
    file's device and inode, trusted only when they match the file being opened (a stale or
    foreign ``.lock`` never decides anything). A new store file is made here, readable by its
    owner only. SQLite's own locks are POSIX locks, which a flock does not touch on a local
    file system; a store belongs on a local file system anyway (SQLite's WAL needs it).

    :meth:`check` tells whether the path still names this file (it was not deleted, renamed
    away or replaced): a store whose file is gone must not accept anything more.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._fd = -1
        self.identity = (0, 0)
        self._checked_at = float("-inf")
        self.gone: str | None = None
        try:
            self._refuse_if_held(_identity(os.stat(self.path)))
        except FileNotFoundError:
            pass  # made below
        except OSError as exc:
            raise StoreError(f"cannot use the store {path}: {exc.strerror}") from exc
        self._fd, created = _open_db(path)
        try:
            info = os.fstat(self._fd)
            self.identity = _identity(info)
            with _HELD_LOCK:
                self._refuse_if_held(self.identity)
                self._flock(path)
                if info.st_nlink > 1:
                    _refuse_other_journals(os.path.realpath(self.path), self.identity)
                _HELD[self.identity] = self.path
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise
        if created:
            os.fchmod(self._fd, 0o600)  # whatever the umask
        if info.st_nlink > 1:
            logger.warning("%s has %d hard links: open it by this one name only (SQLite's "
                           "-wal journal goes by the name)", path, info.st_nlink)
        self._note_holder()
        self._checked_at = time.monotonic()

    def _refuse_if_held(self, identity: tuple[int, int]) -> None:
        other = _HELD.get(identity)
        if other is not None:
            named = "" if other == self.path else f", opened as {other}"
            raise StoreError(f"{self.path} is in use by another store object of this process "
                             f"(pid {os.getpid()}){named}; one process per SQLite store — for "
                             "several instances use a PostgreSQL store")

    def _flock(self, path: str) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(self.path + ".lock", self.identity)
            raise StoreError(f"{path} is in use by another process (pid {holder}); one "
                             "process per SQLite store (the lock is on the file itself, "
                             "whatever name or link it was opened by) — for several "
                             "instances use a PostgreSQL store") from None
        except OSError as exc:
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc

    def _note_holder(self) -> None:
        """Write our pid and the file's identity into ``<path>.lock`` (best effort: the
        note is for error messages, the lock is the flock)."""
        note = os.path.realpath(self.path) + ".lock"
        try:
            fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            logger.warning("%s: cannot write the lock note %s: %s", self.path, note,
                           exc.strerror)
            return
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, f"{os.getpid()} {self.identity[0]}:{self.identity[1]}\n".encode())
        finally:
            os.close(fd)

    def check(self, always: bool = False) -> None:
        """StoreError if the path no longer names the file this store opened (deleted,
        renamed away or replaced). Looks (one ``stat``) at most once per
        :data:`CHECK_INTERVAL` unless ``always``; once gone, it stays gone, and that is
        logged once, at ERROR."""
        if self.gone is None:
            now = time.monotonic()
            if not always and now - self._checked_at < CHECK_INTERVAL:
                return
            self._checked_at = now
            try:
                found = _identity(os.stat(self.path))
                reason = None if found == self.identity else "replaced by another file"
            except FileNotFoundError:
                reason = "deleted or renamed"
            except OSError as exc:
                reason = f"no longer reachable ({exc.strerror})"
            if reason is None:
                return
            self.gone = (f"the store file {self.path} was {reason} while in use: nothing more "
                         "is accepted into it (a restart would open another file and handle "
                         "messages again); stop the process, put the file back, restart")
            logger.error("%s", self.gone)
        raise StoreError(self.gone)

    def __del__(self) -> None:
        # a store dropped without close(): its lock and its entry in _HELD go with it
        self.close()

    def close(self) -> None:
        """Drop the lock (close the descriptor: call it after SQLite's connection is
        closed, or SQLite's own locks go with it)."""
        if self._fd >= 0:
            with _HELD_LOCK:
                if _HELD.get(self.identity) == self.path:
                    del _HELD[self.identity]
            os.close(self._fd)
            self._fd = -1


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _refuse_other_journals(real: str, identity: tuple[int, int]) -> None:
    """StoreError if another name of this file in its folder has a -wal journal: SQLite names
    the journal after the path it opens, so transactions committed by a process that used
    that name (and was killed) would be invisible here, and opening it by that name later,
    after writes by this one, would replay them over newer pages (a corrupt file). A folder
    of more than :data:`SCAN_LIMIT` entries is not searched (the warning below still says)."""
    folder, name = os.path.split(real)
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= SCAN_LIMIT:
                    return
                if entry.name == name or entry.inode() != identity[1]:
                    continue
                if entry.stat(follow_symlinks=False).st_dev != identity[0]:
                    continue
                journal = entry.path + "-wal"
                if os.path.exists(journal) and os.path.getsize(journal) > 0:
                    raise StoreError(f"cannot use {real}: it is also {entry.path} (a hard link), "
                                     f"whose journal {journal} holds transactions; open it "
                                     f"once by that name (SQLite then folds them in) first")
    except OSError as exc:
        logger.warning("%s: cannot look for other names of the file: %s", real, exc.strerror)


def _open_db(path: str) -> tuple[int, bool]:
    """A descriptor of the store file, made 0600 if new; (fd, made now)."""
    flags = os.O_RDWR | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}") from exc
    try:
        return os.open(path, flags), False
    except PermissionError:
        pass  # a read-only file can be locked all the same; SQLite says the rest
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror}") from exc
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror}") from exc


def _holder(note: str, identity: tuple[int, int]) -> str:
    """The pid holding the flock on the file ``identity``: from the lock note if it is about
    this very file, else from /proc/locks (Linux); "unknown" otherwise."""
    try:
        with open(note, "rb") as file:
            words = file.read(80).decode("ascii", "replace").split()
        if len(words) == 2 and words[0].isdigit() and words[1] == "%d:%d" % identity:
            return words[0]
    except OSError:
        pass
    dev, ino = identity
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if "FLOCK" in fields and wanted in fields and "->" not in fields:
                    return fields[fields.index(wanted) - 1]
    except OSError:
        pass
    return "unknown"

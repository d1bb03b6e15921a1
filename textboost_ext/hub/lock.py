"""One writer per adapter name: an advisory lock file ``<store>/.<name>.lock`` (stdlib only).

``fcntl.flock`` is released by the kernel when the holding process dies, even by SIGKILL, so a lock
left by a dead run is simply taken over (its file stays until then, holding the dead pid; harmless). A
clean release deletes the file; whoever locked a file that was deleted meanwhile tries again, so two
holders can never hold two different files. The file holds the holder's pid for the error message.
Where ``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import IO

from textboost_ext.hub.errors import AdapterStoreError


class AdapterBusyError(AdapterStoreError):
    """Another process is writing the same adapter."""


def lock_path(root: Path, name: str) -> Path:
    return Path(root) / f".{name}.lock"


class AdapterLock:
    """Held from ``acquire`` until ``release`` (or the process ends)."""

    def __init__(self, root: Path, name: str, purpose: str) -> None:
        self.path = lock_path(root, name)
        self.name = name
        self.purpose = purpose
        self._handle: IO[str] | None = None

    def acquire(self) -> AdapterLock:
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while held
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown process"
                handle.close()
                raise AdapterBusyError(
                    f"adapter {self.name!r} is being written by another process ({holder}); wait for it to finish, "
                    f"stop it, or choose another output_name / --name"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()  # the previous holder deleted the file after we opened it: lock the new one
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}: {self.purpose}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)  # while still held: nobody can be holding another file
            self._handle.close()  # closing drops the flock
            self._handle = None

    def __enter__(self) -> AdapterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

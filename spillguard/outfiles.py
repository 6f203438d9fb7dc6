"""Files spillguard writes for the user (results, reports, people lists): checked before long work,
written atomically and owner-only, because they can describe personal data."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from spillguard.errors import UserError


def check_writable(path: str | Path, option: str) -> None:
    """Refuse, before any work, an output that cannot be written: a folder, a missing folder, a read-only place."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; name a file to write")
    if path.exists() and not path.is_file():
        return  # /dev/null, a FIFO, /dev/stdout: written through
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: folder {parent} does not exist; create it or choose another place")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".check")
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write there ({exc.strerror or exc}); choose a writable folder") from None
    os.close(fd)
    os.unlink(probe)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path}: file is not writable; choose another name or fix its permissions")


def write_private(path: str | Path, text: str) -> None:
    """Write atomically (temp file + rename), owner-only: these files can describe personal data."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; name a file to write")
    if path.exists() and not path.is_file():
        # /dev/null, a FIFO, /dev/stdout: write through, never replace the node itself.
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc}); choose a writable folder") from None
    with private_file(path) as fh:
        fh.write(text.encode("utf-8"))


@contextlib.contextmanager
def private_file(path: str | Path, sync: bool = True) -> Iterator[BinaryIO]:
    """A binary file that appears at `path` only when the block ends without error: written to a temporary file
    in the same folder (mode 0600), synced (unless `sync` is false: for what may be lost in a crash), then renamed
    over `path`; on any error the temporary file is removed."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc}); choose a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(out: TextIO | None, path: str | None, text: str) -> None:
    if path:
        write_private(path, text)
    else:
        assert out is not None
        out.write(text)


def check_state_path(path: Path) -> None:
    """A `--state FILE` that can be made: its folder exists and it is not a folder (one line, exit 2, else)."""
    if not path.parent.is_dir():
        raise UserError(f"--state {path}: folder {path.parent} does not exist; create it or choose another place")
    if path.is_dir():
        raise UserError(f"--state {path}: is a folder; name a file")


def open_state_db(path: Path) -> sqlite3.Connection:
    """The state file, created owner-only if new, opened in WAL mode (a commit survives kill -9)."""
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise UserError(f"--state {path}: cannot create it ({exc.strerror or exc}); choose a writable folder") from None
    os.chmod(path, 0o600)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db

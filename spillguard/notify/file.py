"""JSON lines appended to a file created owner-only (it may name stores and what they hold)."""

from __future__ import annotations

import os

from spillguard.config import SinkConfig
from spillguard.notify.message import Message, SinkError, dumps

DEFAULT_PATH = "spillguard-alerts.jsonl"


class FileSink:
    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path

    def send(self, message: Message) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            # An existing alert file others can read (e.g. 0644) is tightened: alerts name what is exposed where.
            if os.fstat(fd).st_mode & 0o077:
                try:
                    os.fchmod(fd, 0o600)
                except OSError:
                    os.close(fd)
                    raise SinkError(f"file {self.path}: others can read it and it cannot be made owner-only; "
                                    "chmod 600 it or give another --alert-file") from None
            with os.fdopen(fd, "a") as fh:
                fh.write(dumps(message.fields) + "\n")
        except OSError as exc:
            raise SinkError(f"file {self.path}: {exc.strerror or exc}") from exc


def from_config(cfg: SinkConfig) -> FileSink:
    return FileSink(cfg.path or DEFAULT_PATH)

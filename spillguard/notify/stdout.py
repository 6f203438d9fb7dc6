"""JSON lines on standard output: the default sink, for pipes and service logs."""

from __future__ import annotations

import sys

from spillguard.config import SinkConfig
from spillguard.notify.message import Message, dumps


class StdoutSink:
    name = "stdout"

    def send(self, message: Message) -> None:
        sys.stdout.write(dumps(message.fields) + "\n")
        sys.stdout.flush()


def from_config(cfg: SinkConfig) -> StdoutSink:
    return StdoutSink()

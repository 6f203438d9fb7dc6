"""A local command: the message's JSON on stdin and SPILLGUARD_* variables, never in argv, no shell."""

from __future__ import annotations

import os
import shlex
import subprocess

from spillguard.config import SinkConfig
from spillguard.notify.message import Message, SinkError, dumps

DEFAULT_TIMEOUT = 30.0


class CommandSink:
    name = "command"

    def __init__(self, command: list[str] | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        self.timeout = timeout

    def send(self, message: Message) -> None:
        env = dict(os.environ)
        env.update({f"SPILLGUARD_{k.upper()}": v for k, v in message.variables.items()})
        env["SPILLGUARD_SUBJECT"] = message.subject
        env["SPILLGUARD_KEY"] = message.key
        try:
            res = subprocess.run(self.argv, input=dumps(message.fields) + "\n", text=True, capture_output=True,
                                 timeout=self.timeout, env=env)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SinkError(f"command {self.argv[0]}: {exc}") from exc
        if res.returncode != 0:
            raise SinkError(f"command {self.argv[0]} exited {res.returncode}: {res.stderr.strip()[:200]}")


def from_config(cfg: SinkConfig) -> CommandSink:
    # The config's timeout defaults to 10 s, a webhook's; a command gets 30 s unless one was set.
    return CommandSink(cfg.command or [], cfg.timeout if cfg.timeout != 10.0 else DEFAULT_TIMEOUT)

"""What a scan is asked to do: rules, subject field, sampling, workers, checkpointing, per-target options."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class ScanOptions:
    rule_files: Sequence[str | Path] = ()
    only: Sequence[str] | None = None
    exclude: Sequence[str] | None = None
    subject_field: str | None = None
    show_samples: bool = False
    subjects_out: bool = False
    seed: int = field(default_factory=lambda: secrets.randbits(63))
    source_options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None  # worker processes over partitions; None = one per core
    state: str | Path | None = None  # checkpoint file (SQLite) for --resume
    resume: bool = False
    target_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per target URL (from --config)
    secrets_out: bool = False  # collect every leaked secret's digests (respond.leaked) for --secrets-out
    # --secrets-hmac-key-env: the NAME of the variable holding the application's HMAC key (never the key itself)
    secrets_hmac_key_env: str | None = None
    executor: str = "local"  # a row of scan.executors.EXECUTORS
    ray_address: str | None = None  # --ray-address: None starts a Ray instance on this machine
    approx_subjects: bool = False  # HyperLogLog sketches instead of exact subject hashes (detect/sketch.py)
    merge_memory: int | None = None  # bytes of subject hashes the scan keeps in memory before spilling to disk

    def source_options_for(self, target: str) -> dict[str, Any]:
        """Scan-wide source options, overridden by the target's own (from the config file)."""
        own = self.target_options.get(target, {})
        merged = {**self.source_options, **own, "seed": self.seed}
        for key in ("include", "exclude"):
            both = list(self.source_options.get(key) or []) + list(own.get(key) or [])
            if both:
                merged[key] = both
        return merged

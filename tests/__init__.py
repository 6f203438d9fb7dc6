"""spillguard's tests, one folder per package (tests/scan, tests/sources, ...); shared servers and data at this level."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: README, docs, scripts

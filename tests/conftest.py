from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The authorization-server and SMTP fixtures (dot, oidc, smtp, mail_api) of the respond tests, and the
# "start a store, load the generated dataset, yield it" fixtures (pg, maria, rds, es, mongo) of the store tests.
pytest_plugins = ["tests.authservers", "tests.stores_plugin"]


def pytest_configure(config: pytest.Config) -> None:
    # A shell starts a background job (`pytest ... &`, nohup, some CI runners) with SIGINT ignored, and an ignored
    # signal stays ignored across exec: every CLI the tests start would then shrug off the Ctrl-C the Ctrl-C tests
    # send. Python's own handler in this process makes the children start with the default disposition again.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _fingerprint_key_in_tmp(tmp_path_factory, monkeypatch):
    # Keep the fingerprint key file out of the real home directory.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "state"))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    from spillguard.demo import generate

    folder = tmp_path_factory.mktemp("demo")
    truth = generate(folder, users=3000, seed=7)
    return folder, truth


@pytest.fixture(scope="session")
def demo_result(demo_data):
    import spillguard

    os.environ.setdefault("XDG_STATE_HOME", str(demo_data[0].parent / "state"))
    folder, _truth = demo_data
    return spillguard.scan([folder], show_samples=True)

"""spillguard.toml: targets, inventories and watch settings load; mistakes are one-line UserErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillguard.audit.core import resolve_targets
from spillguard.config import load_config
from spillguard.errors import UserError

EXAMPLE = """
inventory = ["scans/all.json"]

[[target]]
name = "metrics-es"
url = "elasticsearch+http://127.0.0.1:9200"
password_env = "SG_TEST_ES_PASSWORD"
include = ["users*"]
exclude = [".*"]
subject_fields = { "users" = "user_id" }
admin_url = "elasticsearch+http://elastic@127.0.0.1:9200"
admin_password_env = "SG_TEST_ES_ADMIN"
inventory = "scans/metrics-es.json"

[[target]]
url = "redis://127.0.0.1:6380"

[watch]
interval = 30
state = "state/watch.sqlite"
remind_every = 600

[[watch.sink]]
type = "webhook"
url = "http://127.0.0.1:9000/hook"
format = "slack"

[[watch.sink]]
type = "file"
path = "alerts.jsonl"
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spillguard.toml"
    p.write_text(text)
    return p


def test_full_example_loads_with_paths_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(_write(tmp_path, EXAMPLE))
    assert [t.name for t in cfg.targets] == ["metrics-es", None]
    es = cfg.targets[0]
    assert es.include == ["users*"] and es.exclude == [".*"] and es.subject_fields == {"users": "user_id"}
    assert es.inventory == str(tmp_path / "scans/metrics-es.json")
    assert cfg.inventory == [str(tmp_path / "scans/all.json")]
    assert cfg.watch.interval == 30.0 and cfg.watch.remind_every == 600.0
    assert cfg.watch.state == str(tmp_path / "state/watch.sqlite")
    assert [s.type for s in cfg.watch.sinks] == ["webhook", "file"]
    assert cfg.watch.sinks[0].format == "slack"
    assert cfg.watch.sinks[1].path == str(tmp_path / "alerts.jsonl")

    monkeypatch.setenv("SG_TEST_ES_PASSWORD", "from-env")
    monkeypatch.setenv("SG_TEST_ES_ADMIN", "admin-env")
    targets = resolve_targets(cfg.targets)
    assert targets[0].password == "from-env"
    assert targets[0].admin is not None and targets[0].admin.password == "admin-env"
    assert targets[0].include == ["users*"]
    assert "from-env" not in repr(targets[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[target]]\nurl = "redis://h"\npasword_env = "X"\n', "unknown key 'pasword_env' in [[target]] #1"),
        ('colour = "red"\n', "unknown key 'colour' in the top level"),
        ("[watch]\nintervall = 5\n", "unknown key 'intervall' in [watch]"),
        ('[[watch.sink]]\ntype = "webhook"\nurl = "http://x"\nsecret = "s"\n', "unknown key 'secret'"),
        ('[[watch.sink]]\ntype = "pager"\n', "type 'pager' is not one of"),
        ('[[watch.sink]]\ntype = "webhook"\n', "a webhook sink needs 'url'"),
        ('[[target]]\nname = "x"\n', "has no 'url'"),
        ("[[target]]\nurl = 5\n", "[[target]] #1.url must be a str"),
        ("[watch]\ninterval = 0.5\n", "at least 1 second"),
        ("[[target]\n", "not valid TOML"),
        ('[[target]]\nurl = "redis://:pw@127.0.0.1:abc"\n', "[[target]] #1: target redis://:***@127.0.0.1:abc: port 'abc'"),
        ('[[target]]\nurl = "redis://h"\nadmin_url = "redis://[::1"\n', "[[target]] #1: target redis://[::1: the IPv6"),
        ('[[target]]\nurl = "ftp://h"\n', "unknown scheme 'ftp'"),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(UserError) as exc:
        load_config(p)
    assert str(p) in str(exc.value)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value).strip()


def test_missing_file_and_missing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    monkeypatch.delenv("SG_TEST_UNSET", raising=False)
    cfg = load_config(
        _write(tmp_path, '[[target]]\nurl = "redis://127.0.0.1"\npassword_env = "SG_TEST_UNSET"\n')
    )
    with pytest.raises(UserError, match="SG_TEST_UNSET is not set"):
        resolve_targets(cfg.targets)


def test_the_example_in_docs_audit_md_loads(tmp_path: Path) -> None:
    # The documented config must stay true: take the ```toml block from docs/audit.md and load it.
    doc = (Path(__file__).resolve().parents[1] / "docs" / "audit.md").read_text()
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = load_config(_write(tmp_path, block))
    assert [t.name for t in cfg.targets] == ["metrics-es", "cache", "data-lake"]
    assert [s.type for s in cfg.watch.sinks] == ["webhook", "file"]
    assert cfg.watch.sinks[0].secret_env == "SPILLGUARD_HOOK_KEY"

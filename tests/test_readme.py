"""The README's examples stay true: its Python block runs, its commands exist, its rule example loads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import spillguard
from spillguard.rules import _rules_from_doc

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_example_runs_and_prints_what_it_says(demo_data, monkeypatch):
    folder, _truth = demo_data
    monkeypatch.chdir(folder.parent)
    (folder.parent / "spillguard-demo").exists() or (folder.parent / "spillguard-demo").symlink_to(folder)
    (block,) = _blocks("python")
    env: dict = {}
    checked = 0
    lines = block.splitlines()
    for i, line in enumerate(lines):
        if not line.strip() or line.startswith("#"):
            continue
        code, _, expected = line.partition("  # ")
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if nxt.startswith("# "):  # expected value on the next line
            expected = nxt[2:]
        tree = ast.parse(code.strip())
        if isinstance(tree.body[-1], ast.Expr) and expected.strip():
            value = eval(compile(ast.Expression(tree.body[-1].value), "README", "eval"), env)
            if expected.strip().startswith(("[", "'")):
                assert value == ast.literal_eval(expected.strip()), line
                checked += 1
        else:
            exec(compile(tree, "README", "exec"), env)
    assert checked >= 2


def test_rule_example_in_readme_is_a_valid_rule():
    import tomllib

    (block,) = _blocks("toml")
    (rule,) = _rules_from_doc(tomllib.loads(block), "README")
    from spillguard.detect.engine import RuleSet

    ruleset = RuleSet([rule])
    for ex in rule.examples:
        assert [m.rule for m in spillguard.scan_value(ex.value, ex.field, rules=ruleset)] == [rule.id]
    for ex in rule.negative_examples:
        assert spillguard.scan_value(ex.value, ex.field, rules=ruleset) == []


def test_documented_commands_exist():
    from typer.main import get_command

    from spillguard.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    mentioned = set(re.findall(r"\$ (?:\.venv/bin/)?spillguard (\w+)", README))
    assert mentioned <= commands, mentioned - commands

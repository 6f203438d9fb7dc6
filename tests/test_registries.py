"""The registries (categories, verdicts, checks, sinks) are complete and consistent, and the building-block
modules import without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spillguard
from spillguard import categories, verdicts
from spillguard.audit.verdict import AuditResult, ExposureVerdict
from spillguard.detect.checks import CHECKS
from spillguard.detect.masking import MASKS, mask_value
from spillguard.model import CATEGORIES
from spillguard.rules import builtin_rules

PACKAGE = Path(spillguard.__file__).parent


def test_category_registry_is_the_findings_vocabulary() -> None:
    assert tuple(categories.CATEGORIES) == CATEGORIES == spillguard.CATEGORIES
    for name, c in categories.CATEGORIES.items():
        assert c.masking in MASKS, name
        assert c.group in categories.RISK_GROUPS, name
        assert c.risk in categories.RISK_RANK, name
        assert c.label and c.consequences and c.measures and c.advice and c.we_do, name
    assert {"secret", "password"} == categories.SECRET_CATEGORIES
    assert {"wifi_ssid", "device_name", "password"} == categories.CLAIMING_CATEGORIES
    # Every rule's category is registered, and every category has a rule.
    assert {r.category for r in builtin_rules()} == set(categories.CATEGORIES)
    unknown = categories.category("from_a_newer_version")
    assert unknown.label == "from_a_newer_version" and unknown.risk == "medium"


def test_masking_follows_the_registry() -> None:
    assert mask_value("secret", "Atza|IwEBIxyz123456") == "Atza|IwEB…(19 chars)"
    assert mask_value("credit_card", "4111 1111 1111 1111") == "**** **** **** 1111"
    assert mask_value("phone", "+49 151 2345678") == "+** *** *****78"
    assert mask_value("health", "72.5") == "***"
    assert mask_value("wifi_ssid", "Smith Family") == "S***(12 chars)"
    assert mask_value("from_a_newer_version", "Jane Doe") == "J*** D***"


def test_verdict_registry_covers_every_verdict_worst_first() -> None:
    assert set(verdicts.VERDICTS) == {v.value for v in verdicts.Verdict}
    order = sorted(verdicts.VERDICTS, key=verdicts.severity)
    assert order == ["open-read", "weak-credentials", "open-metadata", "error", "unreachable", "protected"]
    assert {"open-read", "weak-credentials", "open-metadata"} == verdicts.EXPOSED
    assert all(verdicts.plain_exposure(v) for v in verdicts.EXPOSED)
    assert verdicts.worst(["open-metadata", "open-read", "protected"]) == "open-read"
    assert verdicts.worse("weak-credentials", "open-metadata") and not verdicts.worse("protected", "error")
    # An unknown verdict (a newer spillguard's) is never worse than a known one.
    assert verdicts.worst(["something-new", "protected"]) == "protected"
    # The audit's table order and exposure flag are the registry's.
    targets = [ExposureVerdict("t", "redis", verdicts.Verdict(v)) for v in ("protected", "open-metadata", "error")]
    result = AuditResult("2026-12-02T00:00:00Z", targets)
    assert result.worst() == "open-metadata" and [t.exposed for t in targets] == [False, True, False]


def test_every_check_is_used_by_a_rule() -> None:
    used = {r.check for r in builtin_rules() if r.check}
    assert used == set(CHECKS)


def _module_imports(path: Path, modules: set[str]) -> set[str]:
    """spillguard modules a module imports, at the top or inside a function (a deferred import hides a cycle,
    it does not remove it), but not under TYPE_CHECKING; `from package import submodule` counts as importing
    the submodule only."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spillguard"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out |= subs
            if len(subs) < len(node.names):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("spillguard"))
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@pytest.mark.parametrize(
    "root", ["keys.py", "categories.py", "verdicts.py", "notify", "report", "detect", "audit/alerts.py"]
)
def test_building_blocks_have_no_import_cycles(root: str) -> None:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in _module_imports(p, set(modules)) if i in modules and i != m} for m, p in modules.items()}
    start = _module_name(PACKAGE / root) if root.endswith(".py") else f"spillguard.{root.replace('/', '.')}"
    members = [m for m in graph if m == start or m.startswith(start + ".")]

    def reaches(src: str, dst: str) -> bool:
        seen, todo = set(), [src]
        while todo:
            m = todo.pop()
            for n in graph.get(m, ()):
                if n == dst:
                    return True
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return False

    cycles = [m for m in members if reaches(m, m)]
    assert not cycles, f"import cycles through {cycles}"

"""The folder listing (os.scandir) names and orders files exactly as sorted(Path.rglob) did."""

from __future__ import annotations

import os
from pathlib import Path

from spillguard.sources.files import FileSource, file_kind


def _reference(root: Path) -> tuple[list[str], list[Path], list[Path], list[Path]]:
    """The listing as it was: pathlib's rglob, sorted, with a stat per question."""
    found, links, broken, special = [], [], [], []
    for p in sorted(root.rglob("*")):
        if p.is_symlink() and p.is_dir():
            links.append(p.relative_to(root))
            continue
        if file_kind(p) is None:
            continue
        if p.is_file():
            found.append(str(p.relative_to(root)))
        elif p.is_symlink() and not p.exists():
            broken.append(p.relative_to(root))
        elif not p.is_dir():
            special.append(p.relative_to(root))
    return found, links, broken, special


def test_listing_matches_sorted_rglob(tmp_path):
    root = tmp_path / "lake"
    for rel in ["a.jsonl", "a-b/x.csv", "a/x.jsonl", "a/b/c/deep.ndjson.gz", "B.JSONL", ".hidden.jsonl", "z/.dot/y.tsv",
                "readme.txt", "data.jsonl.", "x.parquet", "n/m.json.zst", "é/ü.jsonl", "a b/c d.jsonl"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b'{"a": 1}\n')
    (root / "folder.jsonl").mkdir()  # a folder named like a data file
    (root / "folder.jsonl" / "in.jsonl").write_bytes(b'{"a": 1}\n')
    os.symlink(root / "a", root / "link_to_a")
    os.symlink(root / "nothing.jsonl", root / "broken.jsonl")
    os.symlink(root / "a.jsonl", root / "good_link.jsonl")
    os.mkfifo(root / "pipe.jsonl")
    os.symlink(root / "loop-b.jsonl", root / "loop-a.jsonl")  # a loop: neither a file nor a folder
    os.symlink(root / "loop-a.jsonl", root / "loop-b.jsonl")
    for target in (str(root), str(root) + "/", f"{root}/./"):
        source = FileSource(target)
        names = [d.name for d in source.datasets()]
        found, links, broken, special = _reference(root)
        assert names == found
        assert (source.folder_links, source.broken_links, source.special) == (links, broken, special)
    assert "a/x.jsonl" in names and "good_link.jsonl" in names and "folder.jsonl/in.jsonl" in names


def test_listing_of_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "r.jsonl").write_bytes(b'{"a": 1}\n')
    monkeypatch.chdir(tmp_path)
    datasets = list(FileSource(".").datasets())
    assert [d.name for d in datasets] == ["p/r.jsonl"] and datasets[0].file.open().read() == b'{"a": 1}\n'

"""The reader protocol is complete for every adapter: callers never need hasattr/getattr."""

from __future__ import annotations

import importlib
import inspect
import os

import pytest

from spillguard.sources.base import DatasetReader, ReaderDefaults, Source, SourceDefaults
from spillguard.sources.files import FileDataset, FileSource
from spillguard.targets import SCHEMES


def _protocol_methods(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if inspect.isfunction(value) and not name.startswith("_")}


def _adapter(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


SOURCES = sorted({row.adapter for row in SCHEMES.values() if row.adapter})


@pytest.mark.parametrize("spec", SOURCES)
def test_every_store_source_and_its_datasets_have_the_whole_protocol(spec):
    source = _adapter(spec)
    assert issubclass(source, SourceDefaults)
    assert _protocol_methods(Source) <= {n for n in dir(source) if callable(getattr(source, n))}
    reader = inspect.signature(source.dataset).return_annotation
    module = importlib.import_module(source.__module__)
    reader_class = getattr(module, reader) if isinstance(reader, str) else reader
    assert issubclass(reader_class, ReaderDefaults), reader_class
    assert _protocol_methods(DatasetReader) <= {n for n in dir(reader_class) if callable(getattr(reader_class, n))}


def test_files_have_the_whole_protocol_and_a_signature(tmp_path):
    assert issubclass(FileSource, SourceDefaults) and issubclass(FileDataset, ReaderDefaults)
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n')
    (tmp_path / "b.jsonl").write_text('{"x": 2}\n')
    source = FileSource(str(tmp_path))
    reader = source.dataset("b.jsonl")
    assert reader.name == "b.jsonl" and reader.size() == 9 and source.warnings() == []
    before = reader.signature()
    (tmp_path / "b.jsonl").write_text('{"x": 3}\n')  # same size, new content
    st = (tmp_path / "b.jsonl").stat()
    os.utime(tmp_path / "b.jsonl", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert reader.signature() != before
    reader.reset()  # nothing to drop for files, but callable like every reader's

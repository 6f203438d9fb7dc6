"""Store adapters, chosen by target: a path (file or folder) or a URL whose scheme names the store.

Which adapter reads which scheme is a column of the target registry (`spillguard.targets.SCHEMES`).
"""

from __future__ import annotations

import importlib
from typing import Any

from spillguard.errors import UserError
from spillguard.sources.base import DatasetReader, MalformedSink, Partition, Source
from spillguard.targets import adapter_of, is_url, mask_url, normalized_url


def open_target(target: str, **options: Any) -> Source:
    if not is_url(target):
        from spillguard.sources.files import FileSource

        return FileSource(target, **options)
    row, spec = adapter_of(target)
    # Adapters parse URLs with the standard library: hand them the credentials percent-encoded.
    url = normalized_url(target)
    module_name, class_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(
            f"{mask_url(target)}: support for {row.scheme}:// is not available ({exc.name} missing)"
        ) from None
    return getattr(module, class_name)(url, **options)  # type: ignore[no-any-return]


__all__ = ["DatasetReader", "MalformedSink", "Partition", "Source", "open_target"]

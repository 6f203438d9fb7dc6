# Types of the native detection core (native/matcher.c).
from collections.abc import Sequence

FLAG_CASELESS: int
FLAG_MULTILINE: int
FLAG_DOTALL: int
FLAG_SINGLEMATCH: int
FLAG_UTF8: int
FLAG_UCP: int

class NativeError(Exception): ...

class Matcher:
    def __init__(self, expressions: Sequence[bytes], flags: Sequence[int], ids: Sequence[int]) -> None: ...
    @classmethod
    def deserialize(cls, data: bytes) -> Matcher: ...
    def serialize(self) -> bytes: ...
    def scan(self, offsets: object, data: object, start: int, n: int, wide: bool) -> tuple[bytes, bytes]: ...

def vectorscan_version() -> str: ...

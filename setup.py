"""Builds spillguard's native detection core (the metadata lives in pyproject.toml).

The core links Vectorscan (Debian/Ubuntu: libvectorscan-dev, which scripts/bootstrap installs; elsewhere Hyperscan's
libhs with the same API), OpenSSL's libcrypto (libssl-dev) and xxHash (libxxhash-dev: the compile cache's digests). pkg-config names its flags; without it the Debian paths are used.
"""

import shutil
import subprocess

from setuptools import Extension, setup


def _hs_flags() -> tuple[list[str], list[str], list[str]]:
    if shutil.which("pkg-config"):
        try:
            cflags = subprocess.run(["pkg-config", "--cflags", "libhs"], check=True, capture_output=True, text=True).stdout.split()
            libs = subprocess.run(["pkg-config", "--libs", "libhs"], check=True, capture_output=True, text=True).stdout.split()
            return [f[2:] for f in cflags if f.startswith("-I")], [f[2:] for f in libs if f.startswith("-L")], [f[2:] for f in libs if f.startswith("-l")]
        except subprocess.CalledProcessError:
            pass
    return ["/usr/include/hs"], [], ["hs"]


include_dirs, library_dirs, libraries = _hs_flags()
setup(
    ext_modules=[
        Extension(
            "spillguard._native",
            sources=["native/matcher.c", "native/column.c", "native/digests.c", "native/sort.c", "native/entropy.c", "native/checks.c", "native/lines.c", "native/jsonl.c", "native/copytext.c", "native/pairs.c"],
            include_dirs=include_dirs,
            library_dirs=library_dirs,
            libraries=[*libraries, "crypto", "xxhash", "dl"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)

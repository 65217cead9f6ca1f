"""Reading the official data set archives (gzip-compressed tars): members are streamed out
in the order they are stored (no extraction to disk, no seeking back), the gzip checksum
is verified, and every failure becomes a DataError naming the archive and, where there
is one, the member.

Twins: none (data is prepared once, in Python).
"""
from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

from dlrosetta.data import DataError, require_int

K = TypeVar("K")


def require_archive(path: str | Path, description: str, url: str) -> Path:
    """The archive's path, or a DataError saying where to get it and which key to set."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{description} archive not found: {path}. Download it from {url} "
                        f"and set the data set's `archive` config key to its path.")
    return path.resolve()


def stream_members(archive: Path, select: Callable[[str], Optional[K]]) -> Iterator[tuple[K, bytes]]:
    """Yield (key, content) for each regular file whose name `select` maps to a key."""
    where = "no member could be read"
    try:
        with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                where = f"last member reached: {member.name!r}"
                key = select(member.name) if member.isfile() else None
                if key is not None:
                    yield key, tar.extractfile(member).read()
            # tarfile stops at the end-of-archive blocks; reading on to the end makes gzip
            # check its trailer (CRC, length), so a cut in the last bytes fails too.
            where = "every member was read; its end is damaged"
            while gz.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{archive}: corrupt or truncated archive ({where}): {e}") from e


def require_members(archive: Path, found, expected, description: str) -> None:
    """Fail naming the members the archive lacks."""
    missing = [m for m in expected if m not in found]
    if missing:
        raise DataError(f"{archive}: member(s) {missing} not found; is it the {description} archive?")


def subset_size(requested: Optional[int], available: int, split: str) -> int:
    """How many samples of the official order to keep: all (None) or the first N."""
    return available if requested is None else require_int(f"{split}_samples", requested, 1, available)

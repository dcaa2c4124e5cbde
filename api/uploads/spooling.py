"""Uploads read where the multipart parser spooled them: from their start, and hashed a chunk at a time.

Hashing, decoding and storing each read an upload whole, straight from its spooled file, so no step holds a
copy of it in memory.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

_HASH_CHUNK_BYTES = 1 << 20


def rewound(file: BinaryIO) -> BinaryIO:
    """``file`` at its start: hashing, decoding and storing each read an upload whole."""
    file.seek(0)
    return file


def sha256(file: BinaryIO) -> bytes:
    """The SHA-256 digest of ``file`` from where it stands to its end, read in chunks."""
    digest = hashlib.sha256()
    while chunk := file.read(_HASH_CHUNK_BYTES):
        digest.update(chunk)
    return digest.digest()

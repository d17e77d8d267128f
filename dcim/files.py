"""Durable, private files: the two calls every component that writes state to disk shares."""

from __future__ import annotations

import os
from pathlib import Path


def owner_only(path: str, flags: int) -> int:
    """``open(..., opener=owner_only)``: a new file readable by its owner only (0600)."""
    return os.open(path, flags, 0o600)


def fsync_dir(path: str | Path) -> None:
    """Make a folder's entries durable: after a create or a rename, the file's data is fsynced but
    its name is not until the folder is (fsync(2), "Calling fsync() does not necessarily ensure that
    the entry in the directory containing the file has also reached disk")."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

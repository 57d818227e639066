"""Writing outputs atomically, and checksums of files.

Every file or directory moviegenre writes is first built under a hidden temporary name beside
its target and renamed into place only when complete, so an interrupted run never leaves
something that looks finished: :func:`atomic_path` for a file written by someone else's
writer (a figure, a Parquet file), :func:`atomic_write` for a file written through a handle,
:func:`atomic_directory` for a directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from moviegenre.core.errors import OutputError


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file's bytes (read into one reused buffer: every load checks tens
    of megabytes)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block succeeds, move it to ``target``.

    The file gets the permissions a plain ``open()`` would have given it (``mkstemp`` makes it
    private). If the block raises, the temporary file is removed and ``target`` is untouched.
    An ``OSError`` becomes an :class:`~moviegenre.core.errors.OutputError` naming ``target``.
    """
    import tempfile  # here and in _staging_directory: loading a model writes nothing (2 ms of a cold start)

    target = Path(target)
    temporary: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(handle)
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as exc:
        culprit = "" if exc.filename in (None, temporary, str(target)) else f" ({exc.filename})"
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}{culprit}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


@contextmanager
def atomic_write(target: str | Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``open(target, mode)`` for writing, through :func:`atomic_path`.

    Text mode defaults to UTF-8 and no newline translation (what the csv module expects).
    """
    if "b" not in mode:
        open_kwargs = {"encoding": "utf-8", "newline": "", **open_kwargs}
    with atomic_path(target) as temporary, open(temporary, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a new hidden staging directory beside ``target``; when the block succeeds, it
    replaces ``target`` (the old one renamed aside first and deleted last). If the block raises, the staging
    directory is removed and ``target`` is untouched. An ``OSError`` becomes an
    :class:`~moviegenre.core.errors.OutputError` naming ``target``.
    """
    target = Path(target)
    staging: Path | None = None
    try:
        staging = _staging_directory(target)
        yield staging
        _replace_directory(staging, target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _staging_directory(target: str | Path) -> Path:
    """A new hidden directory beside ``target``, to build it in before :func:`_replace_directory`."""
    import tempfile

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide a model from its server
    return Path(staging)


def _replace_directory(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` directory to ``target``, replacing what is there.

    The old directory is renamed aside first and deleted last, so ``target`` always holds
    either the old or the new directory. The caller decides beforehand whether ``target`` may
    be replaced.
    """
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

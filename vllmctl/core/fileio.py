"""Reading and writing models.yaml without ever leaving it torn, lost or overwritten blindly.

- Writes are atomic: a temp file in the same directory, fsync, rename over the file,
  fsync of the directory; the file's permission bits are kept.
- Edits by two vllmctl processes are serialised by an advisory lock (flock) on the
  file's directory, so no lock file is left behind and the lock survives the rename.
- Just before the rename the file is read again: if anyone (an editor, a script) has
  changed it since it was read, nothing is written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path

from vllmctl.core.errors import CatalogError, ConcurrentEditError

LOCK_TIMEOUT_SECONDS = 30.0


def real_path(path: Path) -> Path:
    """The file a (possibly symlinked) path names: writes go there, keeping the link."""
    return Path(os.path.realpath(path))


# The largest file vllmctl reads (models.yaml, an overlay, vllmctl.yaml). 1 MiB holds some
# 5,000 commented models (10,000 terse ones), more than one Helm release can carry (helm
# keeps a release, values included, in a Secret of at most 1 MiB after gzip), and keeps
# the worst case of any read near 1 CPU second and 100 MB (benchmarks/README.md).
MAX_FILE_BYTES = 1024 * 1024


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist; a file past MAX_FILE_BYTES is refused."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise CatalogError(f"{path} is a directory; give the path of a models.yaml file.") from None
    except PermissionError:
        raise CatalogError(f"{path} cannot be read: permission denied.") from None
    if len(data) > MAX_FILE_BYTES:
        raise CatalogError(
            f"{path} is larger than {MAX_FILE_BYTES // 1024**2} MiB, the most vllmctl reads "
            "(one Helm release cannot carry that much); split it, or check that it is the file you meant."
        )
    return data


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the edit lock of `path`'s directory while the block runs."""
    directory = path.parent
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise CatalogError(f"{directory} does not exist; create it or give another --models path.") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() > deadline:
                    raise CatalogError(
                        f"another vllmctl has been editing {path} for {timeout:.0f} s; "
                        "wait for it to finish and try again."
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def atomic_write(path: Path, data: bytes, expected: bytes | None) -> None:
    """Replace `path` with `data` in one step, unless its content is no longer `expected`.

    `expected` is what the caller read (None: the file did not exist). The caller holds
    `locked(path)`, which keeps other vllmctl processes out; the re-read catches others.
    """
    directory = path.parent
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    import tempfile

    _remove_stale_temp_files(path)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fchmod(temp.fileno(), mode)
            os.fsync(temp.fileno())
        if read_bytes(path) != expected:
            raise ConcurrentEditError(
                f"{path} changed on disk while vllmctl was working on it; nothing was written. "
                "Check the file and run the command again."
            )
        Path(temp_name).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temp_name).unlink()
        raise
    _fsync_directory(directory)


def _remove_stale_temp_files(path: Path) -> None:
    # Temp files exist only while a writer holds the lock, which the caller now holds:
    # any left over belong to a writer that was killed mid-write.
    for stale in _temp_files(path):
        with contextlib.suppress(OSError):
            stale.unlink()


def _temp_files(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def remove_stale_temp_files(path: Path) -> None:
    """Remove temp files a killed writer left beside `path`, if no writer is at work now.

    Reading commands call this: a temp file lives only while its writer holds the edit
    lock, so when the lock is free (taken here without waiting) every temp file is stale.
    When another vllmctl holds the lock, its temp file is live and everything is left.
    Costs one directory listing when there is nothing to remove.
    """
    if not _temp_files(path):
        return
    with contextlib.suppress(OSError, CatalogError), locked(path, timeout=0):
        _remove_stale_temp_files(path)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse fsync on directories.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

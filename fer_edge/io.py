"""Crash-safe file writing. Light tier.

Nothing is ever written directly under its final name: data goes to a temporary file in the
same folder, is flushed to disk, then renamed (atomic on POSIX), so a killed run leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fer_edge.errors import OutputError


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0666 minus the umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes, overwrite: bool = True,
                       mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename).

    The file gets ``mode``, by default the usual permissions (0666 minus the umask, e.g.
    0644), not the 0600 of a temporary file; personal data passes ``mode=0o600``. With
    ``overwrite=False`` an existing ``path`` is never replaced, even by a concurrent writer
    (hard link instead of rename): :class:`FileExistsError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode() if mode is None else mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except OSError as exc:  # disk full, quota...: name the file, not only the errno
        Path(tmp).unlink(missing_ok=True)
        if exc.filename or isinstance(exc, FileExistsError):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | Path, rows: list[dict], overwrite: bool = True) -> None:
    """Write ``rows`` (dicts) as a CSV with a header, atomically; the columns are every key,
    in first-seen order."""
    import csv
    import io

    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"), overwrite=overwrite)


def check_output_file(path: str | Path, flag: str, force: bool = False,
                      renames: bool = False) -> Path:
    """Check, before any work starts, that ``path`` can be written as a new file.

    Args:
        path: the output file (e.g. ``--log faces.csv``).
        flag: the option that named it, for the message.
        force: an existing file may be replaced.
        renames: the writer puts a new file in place (:func:`atomic_write_bytes`) rather than
            writing into the path: with ``force``, a device, pipe or socket there is refused
            (it would be replaced, not written to). A log written into the path (``--log
            /dev/stdout``, a pipe) passes False.

    Raises:
        OutputError: it exists (without ``force``; a broken link too), is a folder, ends
            with "/" (or, with ``renames``, is another non-regular file), its parent is a
            file, or the folder cannot be written.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{flag} {p}: is a folder; give a file name")
    if str(path).endswith(("/", os.sep)) or os.path.basename(str(path)) in (".", ".."):
        # Path() drops a trailing "/" or "/.": it would be written as a file of that name
        raise OutputError(f"{flag} {path}: names a folder; give a file name (e.g. "
                          f"{p / 'name'})")
    if p.is_symlink() and not p.exists() and not force:
        raise OutputError(f"{flag} {p}: is a link to {os.readlink(p)}, which does not exist; "
                          "remove the link, or pass --force to replace it")
    if p.exists() and not force:
        raise OutputError(f"{flag} {p}: exists; pass --force to replace it, or choose another "
                          "name")
    if renames and p.exists() and not p.is_file():
        raise OutputError(f"{flag} {p}: is not a regular file (a device, pipe or socket); "
                          "--force replaces only files: choose a file name")
    _check_folder(p.parent, flag, p)
    return p


def check_output_dir(path: str | Path, flag: str) -> Path:
    """Check, before any work starts, that ``path`` is (or can be made) a writable folder.

    Raises:
        OutputError: it is a file, a parent is a file, or it cannot be written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{flag} {p}: is a file, not a folder; choose a folder")
    _check_folder(p, flag, p)
    return p


def _check_folder(folder: Path, flag: str, shown: Path) -> None:
    folder = Path(os.path.abspath(folder))
    probe = folder
    while not probe.exists():  # the nearest existing ancestor decides
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{flag} {shown}: {probe} is a file, not a folder; choose another "
                          "path")
    try:  # os.access says yes to root everywhere; a real file says it for sure
        with tempfile.TemporaryFile(dir=probe, prefix=".fer-edge-probe."):
            pass
    except OSError as exc:
        raise OutputError(f"{flag} {shown}: cannot write in {probe} ({exc.strerror}); "
                          "choose a folder you can write to") from None


def temp_path_for(path: str | Path) -> Path:
    """A temporary sibling of ``path`` for writers that need a file name (e.g. Keras ``save``).

    Rename it onto ``path`` with :func:`os.replace` once complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.part{os.getpid()}{path.suffix}")

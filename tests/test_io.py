"""fer_edge.io: atomic writes (permissions, no clobber, a full disk) and unique result names."""

from __future__ import annotations

import os
import stat

import pytest


def test_atomic_files_get_the_usual_permissions(tmp_path):
    from fer_edge.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        os.umask(0o027)
        atomic_write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o640


def test_no_clobber_write_and_unique_benchmark_names(tmp_path):
    from fer_edge.bench.cli import write_unique_csv
    from fer_edge.io import atomic_write_bytes

    p = tmp_path / "x.csv"
    p.write_text("first")
    with pytest.raises(FileExistsError):
        atomic_write_bytes(p, b"second", overwrite=False)
    assert p.read_text() == "first" and not list(tmp_path.glob(".*part"))
    a = write_unique_csv(tmp_path, "2026-01-01_host_abc", [{"a": 1}])
    b = write_unique_csv(tmp_path, "2026-01-01_host_abc", [{"a": 2}])
    assert a.name == "2026-01-01_host_abc.csv" and b.name == "2026-01-01_host_abc_2.csv"
    assert a.read_text() == "a\n1\n"


def test_disk_full_during_an_atomic_write_leaves_the_old_file(tmp_path, monkeypatch):
    import errno

    from fer_edge import io as fio

    p = tmp_path / "report.json"
    p.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fio.os, "fsync", full)
    with pytest.raises(OSError) as e:
        fio.atomic_write_text(p, "new")
    assert e.value.filename == str(p)  # the message names the file
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["report.json"]
    from fer_edge.cli import os_error_text

    msg = os_error_text(OSError(errno.ENOSPC, "No space left on device", str(p)))
    assert str(p) in msg and "free some disk space" in msg

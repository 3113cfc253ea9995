"""A report file is written whole or not at all, and the signed archive is recognised by path."""

from __future__ import annotations

import os
import stat

import pytest

from reports.files import inside, write_whole


def test_a_file_is_written_whole_with_the_mode_of_a_new_file(tmp_path):
    target = tmp_path / "r.html"
    write_whole(target, b"first")
    write_whole(target, b"second")
    assert target.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_a_file_replaced_keeps_its_mode_and_a_link_its_target(tmp_path):
    # review: a report made 0600 by its owner came back world-readable, and a link became a file
    target = tmp_path / "r.html"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_whole(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o600
    (tmp_path / "reports").mkdir()
    real = tmp_path / "reports" / "latest.html"
    real.write_bytes(b"old")
    link = tmp_path / "latest.html"
    link.symlink_to(real)
    write_whole(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["latest.html"]


def test_a_failed_write_leaves_the_file_as_it_was_and_nothing_beside_it(tmp_path, monkeypatch):
    target = tmp_path / "r.xlsx"
    target.write_bytes(b"last week's report")

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_whole(target, b"x" * 1_000_000)
    assert target.read_bytes() == b"last week's report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.xlsx"]


def test_inside_sees_through_dot_dot_and_symlinks(tmp_path):
    archive = tmp_path / "data" / "archive"
    (archive / "1405-Q2").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(archive / "1405-Q2")
    assert inside(archive / "1405-Q2" / "report.html", archive)
    assert inside(archive, archive)
    assert inside(tmp_path / "elsewhere" / ".." / "data" / "archive" / "x.html", archive)
    assert inside(tmp_path / "link" / "report.html", archive)
    assert not inside(tmp_path / "data" / "archive-old" / "report.html", archive)
    assert not inside(tmp_path / "elsewhere" / "report.html", archive)

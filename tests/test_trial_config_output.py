"""An operator's trial: `export projects -o FILE` on a full disk ended "error: OSError: [Errno 28] …",
exit 1, where `report --output` on the same disk says "--output …: cannot write there (No space
left on device)", exit 2. Export now says the same line with the same code, and the file under its
name is left as it was (foundation.files.WholeFile).

A full disk is not made here (that needs root to mount a small file system); it is met through
/dev/full, Linux's device on which every write fails with ENOSPC, as a full disk's do: written to
directly (a device is not replaced by a rename), or — for a regular file, which is written to a
temporary file beside it — by pointing that temporary file's descriptor at /dev/full, so that the
same writes and the same close fail exactly where a full disk would fail them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import foundation.files
from budgetwatch.cli import main
from tests.cli import one_line
from foundation.files import WholeFile
from store.db import open_store
from tests.reconcile.reconcile_builders import Store

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """A store with a project and an agreement, and the command line on it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    store = Store(engine)
    store.report(store.project(), 1, 30, reported_on="1405/04/05")
    store.performance(store.operation(store.agreement()), 1, 80, 90, reported_on="1405/04/10")
    engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: data\ndatabase:\n  url: '{url}'\n", encoding="utf-8")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def full_disk(monkeypatch):
    """Every WholeFile's temporary file written to /dev/full (see the module's docstring)."""
    beside = foundation.files.temporary_beside

    def on_a_full_disk(path: Path) -> tuple[Path, int]:
        temporary, descriptor = beside(path)
        full = os.open("/dev/full", os.O_WRONLY)
        try:
            os.dup2(full, descriptor)
        finally:
            os.close(full)
        return temporary, descriptor

    monkeypatch.setattr(foundation.files, "temporary_beside", on_a_full_disk)


_one_line = one_line


@pytest.mark.parametrize("kind", ["projects", "agreements"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_to_a_full_device_says_so_as_report_does(cli, kind, fmt):
    code, _out, err = cli("export", kind, "--format", fmt, "-o", "/dev/full")
    assert code == 2
    assert _one_line(err) == f"error: --output /dev/full: cannot write there ({NO_SPACE})"


def test_export_to_a_file_on_a_full_disk_says_so_and_keeps_the_file_as_it_was(cli, full_disk, tmp_path):
    target = tmp_path / "projects.jsonl"
    target.write_text("yesterday's export\n", encoding="utf-8")
    code, _out, err = cli("export", "projects", "-o", str(target))
    assert code == 2
    assert _one_line(err) == f"error: --output {target}: cannot write there ({NO_SPACE})"
    assert target.read_text(encoding="utf-8") == "yesterday's export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".projects")) == []  # no leftover


def test_a_whole_file_that_cannot_be_written_names_the_path_it_was_given(tmp_path, full_disk):
    target = tmp_path / "out.txt"
    out = WholeFile(target)
    out.write("x" * 10)  # buffered
    with pytest.raises(foundation.files.OutputError) as caught:
        out.close()  # the buffer meets the full disk here
    assert (caught.value.errno, caught.value.strerror, caught.value.filename) == (errno.ENOSPC, NO_SPACE,
                                                                                  str(target))
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_a_write_that_fills_the_disk_midway_is_an_output_error_too(tmp_path, full_disk):
    with pytest.raises(foundation.files.OutputError) as caught:
        with WholeFile(tmp_path / "big.txt") as out:
            for _ in range(100):
                out.write("x" * 4096)  # more than the buffer: written, and refused, before the end
    assert caught.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []


def test_bytes_written_to_the_buffer_beneath_fail_as_an_output_error_too(tmp_path, full_disk):
    # `reconcile --format json -o FILE` writes its JSON's bytes to the text file's buffer
    out = WholeFile(tmp_path / "deviations.json")
    with pytest.raises(foundation.files.OutputError) as caught:
        out.buffer.write(b"[" + b" " * (1 << 20))
        out.buffer.flush()
    out.discard()
    assert caught.value.filename == str(tmp_path / "deviations.json") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [("reconcile", "--as-of", "1405/09/02", "--format", "json"),
                                  ("reconcile", "--as-of", "1405/09/02"),
                                  ("deviations", "list", "--format", "json")])
def test_every_output_on_a_full_disk_is_one_line_and_exit_2(cli, full_disk, tmp_path, argv):
    # the same path for every --output (budgetwatch.app.open_output): reconcile's and the listing's
    # ended exit 1 after export's was fixed alone
    target = tmp_path / "out.txt"
    code, _out, err = cli(*argv, "--output", str(target))
    assert code == 2, err
    assert _one_line(err) == f"error: --output {target}: cannot write there ({NO_SPACE})"
    assert not target.exists()


@pytest.mark.parametrize("argv", [("export", "projects", "-o", "store.db"),
                                  ("reconcile", "--dry-run", "--output", "./data/../store.db"),
                                  ("deviations", "list", "-o", "config.yaml"),
                                  ("report", "--quarter", "1", "--year", "1405", "--output", "linked.html")])
def test_an_output_that_is_the_store_or_the_configuration_is_refused_and_both_are_kept(cli, tmp_path, argv):
    # a trial: `export projects -o <the store's file>` replaced the whole store with JSON lines, exit 0
    (tmp_path / "data").mkdir()
    (tmp_path / "linked.html").symlink_to(tmp_path / "config.yaml")  # another name of the same file
    before = {name: (tmp_path / name).read_bytes() for name in ("store.db", "config.yaml")}
    code, out, err = cli(*argv)
    target = "the configuration file" if argv[-1] in ("config.yaml", "linked.html") else "the store's database"
    assert code == 2 and one_line(err).startswith(f"error: --output {Path(argv[-1])}: is {target}"), err
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert cli("status")[0] != 2  # the store still opens


def test_an_export_into_a_csv_file_is_csv_and_a_format_its_name_contradicts_is_refused(cli, tmp_path):
    # a trial: `export projects -o out.csv` wrote JSON lines into a .csv file without a word
    code, _out, err = cli("export", "projects", "-o", "projects.csv")
    assert code == 0, err
    assert (tmp_path / "projects.csv").read_text(encoding="utf-8-sig").startswith("project_code,")
    assert cli("export", "projects", "-o", "projects.jsonl")[0] == 0
    assert (tmp_path / "projects.jsonl").read_text(encoding="utf-8").startswith('{"project_code": ')
    code, _out, err = cli("export", "projects", "--format", "jsonl", "-o", "other.csv")
    assert code == 2 and one_line(err).startswith("error: --output other.csv: a .csv file for --format jsonl")
    assert not (tmp_path / "other.csv").exists()

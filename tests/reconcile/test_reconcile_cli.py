"""The reconciliation's commands through `budgetwatch.cli.main`, on a store with one planted lag."""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa

import budgetwatch.commands.reconcile  # noqa: F401 - registers the commands (cli.py imports it too)
from budgetwatch.cli import main
from reconcile_builders import Store

JSON_KEYS = {"id", "kind", "rule", "severity", "subject", "fiscal_year", "quarter", "planned", "actual", "measure",
             "status", "message", "agency_code", "county_id", "county"}


@pytest.fixture
def cli(engine, store_url, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    monkeypatch.chdir(tmp_path)
    store = Store(engine)
    py = store.project(total=(100, 100, 100, "100.6"))  # absorbed > allocated by 0.6: credit_inconsistency
    store.report(py, 1, 30, reported_on="1405/04/05")
    store.report(py, 2, 32, reported_on="1405/07/05")  # target 45: gap 13, minor

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.slow_on_postgresql  # what it says of what the store holds, not the database: its SQLite variant stays in the default run
def test_json_output_has_exactly_the_keys_and_ascii_subjects(cli, tmp_path):
    code, out, err = cli("reconcile", "--as-of", "۱۴۰۵/۰۹/۰۲", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [set(r) for r in rows] == [JSON_KEYS, JSON_KEYS]
    by_rule = {r["rule"]: r for r in rows}
    assert by_rule["progress_lag"] == {
        "id": by_rule["progress_lag"]["id"], "kind": "capital",
        "rule": "progress_lag", "severity": "minor", "subject": "1305012007-003", "fiscal_year": 1405,
        "quarter": 2, "planned": 45, "actual": 32, "measure": 13, "status": "open",
        "message": by_rule["progress_lag"]["message"], "agency_code": "305", "county_id": 1, "county": "اهواز"}
    assert isinstance(by_rule["progress_lag"]["id"], int)  # what `deviations show|ack` take
    assert by_rule["credit_inconsistency"]["quarter"] is None
    assert by_rule["credit_inconsistency"]["actual"] == 100.6
    assert rows[0]["rule"] == "credit_inconsistency"  # major sorts before minor
    assert "۳۲٪" in by_rule["progress_lag"]["message"]


@pytest.mark.parametrize("count", [0, 1, 3_000])
def test_streamed_json_is_one_array_an_object_a_line(count):
    """reconcile --format json's writer (budgetwatch.commands.reconcile._stream_json): the same text
    whether the objects fit in one write or take several megabytes (3,000 long Persian sentences)
    and whether the handle takes bytes (a file, stdout) or text only."""
    from budgetwatch.commands.reconcile import _JSON_WRITE, _stream_json

    objects = [{"id": i, "message": "عملکرد «" + "ب" * 400 + f"» {i}", "actual": 100.6} for i in range(count)]
    expected = "[" + "".join(("\n  " if i == 0 else ",\n  ") + json.dumps(o, ensure_ascii=False, separators=(",", ":"))
                             for i, o in enumerate(objects)) + "\n]\n"
    as_bytes = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    _stream_json(iter(objects), as_bytes)
    assert as_bytes.buffer.getvalue().decode("utf-8") == expected
    as_text = io.StringIO()  # no .buffer: written as text
    _stream_json(iter(objects), as_text)
    assert as_text.getvalue() == expected
    assert json.loads(expected) == objects
    if count == 3_000:
        assert len(expected.encode("utf-8")) > 2 * _JSON_WRITE  # written in several pieces


@pytest.mark.slow_on_postgresql  # what a terminal shows, the same from either store
def test_output_file_and_filters_choose_what_is_shown_only(cli, tmp_path):
    out_file = tmp_path / "out.json"
    code, _out, err = cli("reconcile", "--as-of", "2026-11-23", "--format", "json", "--min-severity", "major",
                          "--output", str(out_file))
    assert code == 0, err
    assert [r["rule"] for r in json.loads(out_file.read_text(encoding="utf-8"))] == ["credit_inconsistency"]
    code, out, _ = cli("reconcile", "--as-of", "2026-11-23", "--format", "json", "--county", "دزفول")
    assert json.loads(out) == []
    code, out, _ = cli("reconcile", "--as-of", "2026-11-23", "--format", "json", "--county", "اهواز",
                       "--rule", "progress_lag", "--group", "consolidation", "--agency", "۳۰۵")
    assert [r["rule"] for r in json.loads(out)] == ["progress_lag"]
    # nothing was resolved by the filtered runs
    code, out, _ = cli("deviations", "list", "--format", "json")
    assert sorted(r["status"] for r in json.loads(out)) == ["open", "open"]


@pytest.mark.slow_on_postgresql  # what a terminal shows, the same from either store
def test_table_shows_counts_per_rule_and_group_and_the_rule_stats(cli):
    code, out, err = cli("reconcile", "--as-of", "1405/09/02")
    assert code == 0, err
    text = " ".join(out.split())
    assert "deviations per rule" in text and "deviations per expert group" in text
    assert "how often each rule fired" in text
    assert "threshold may be mis-tuned" in text  # 1 of 1 project flagged
    assert "over half" in text  # the ⚠ column has a header (a new user found it blank)
    assert "consolidation" in text


@pytest.mark.slow_on_postgresql  # options are checked before the store is read
@pytest.mark.parametrize(("argv", "message"), [
    (("--as-of", "1404/12/30"), "--as-of '1404/12/30'"),
    (("--as-of", "tomorrow"), "--as-of 'tomorrow'"),
    (("--rule", "progress_lagg"), "--rule 'progress_lagg': use one of"),
    (("--min-severity", "high"), "--min-severity 'high': use one of minor, major, critical"),
    (("--format", "xml"), "--format 'xml': use table or json"),
    (("--group", "finance"), "--group 'finance'"),
    (("--year", "99"), "--year 99: not a Jalali fiscal year a portal can hold (1390-1500"),
    (("--year", "1300"), "--year 1300: not a Jalali fiscal year a portal can hold (1390-1500"),  # as every command says it
    (("--county", "تهران"), "unknown county 'تهران'"),
    (("--agency", "999"), "unknown agency '999'"),
    (("--county", ""), "--county '': empty"),  # taken as no filter before (a trial, on `report`)
    (("--rule", ","), "--rule ',': empty"),
    (("--year", ""), "--year '': empty"),
])
def test_bad_option_values_are_one_line_errors(cli, argv, message):
    code, out, err = cli("reconcile", *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow_on_postgresql  # options are checked before the store is read
def test_deviations_list_refuses_a_year_no_portal_holds(cli):
    # `--year 1300` listed nothing and exited 0, as if the year had no deviation (a trial)
    code, out, err = cli("deviations", "list", "--year", "1300")
    assert code == 2 and out == ""
    assert err.strip() == "error: --year 1300: not a Jalali fiscal year a portal can hold (1390-1500, e.g. 1405)"


@pytest.mark.slow_on_postgresql  # what a terminal shows, the same from either store
def test_deviations_list_says_the_first_and_last_day_a_run_found_each(cli):
    cli("reconcile", "--as-of", "1405/09/02")
    cli("reconcile", "--as-of", "1405/09/10")  # finds the same again: no deviation row rewritten
    code, out, _ = cli("deviations", "list", "--format", "json", "--rule", "progress_lag")
    [row] = json.loads(out)
    assert (row["first_found_on"], row["last_found_on"]) == ("2026-11-23", "2026-12-01")
    code, out, _ = cli("deviations", "list", "--rule", "progress_lag")
    assert code == 0 and "1405/09/02 – 1405/09/10" in out


@pytest.mark.slow_on_postgresql  # what a terminal shows, the same from either store
def test_deviations_list_is_a_line_each_most_severe_first_then_the_counts(cli, engine, tmp_path):
    """Streamed from the database (not held and sorted in Python): the heads, a line per deviation in
    the order people read them, with the days a run found it; how many; the counts per rule. Portal
    text's control characters never reach the file (a carriage return would split a line, an escape
    sequence clear a terminal): they are written as escapes, seen and not obeyed (a security trial)."""
    from store.models import ProjectYear

    with engine.begin() as conn:
        conn.execute(sa.update(ProjectYear.__table__).values(title="پل\rکارون\x07\x1b[2J"))
    cli("reconcile", "--as-of", "1405/09/02")
    code, _out, err = cli("deviations", "list", "--output", str(tmp_path / "list.txt"))
    assert code == 0 and "written to" in err
    lines = (tmp_path / "list.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0].split() == ["id", "severity", "rule", "subject", "year/q", "planned", "actual", "measure",
                                "status", "found", "message"]
    assert [line.split()[1:3] for line in lines[1:3]] == [["major", "credit_inconsistency"], ["minor", "progress_lag"]]
    assert all("1405/09/02" in line and "پل\\x0dکارون\\x07\\x1b[2J" in line for line in lines[1:3])
    assert lines[3] == "2 deviations" and "deviations per rule" in lines[4]
    assert "\r" not in "".join(lines) and "\x07" not in "".join(lines) and "\x1b" not in "".join(lines)


@pytest.mark.slow_on_postgresql  # what it says of what the store holds, not the database: its SQLite variant stays in the default run
def test_deviations_show_ack_dismiss(cli):
    cli("reconcile", "--as-of", "1405/09/02")
    code, out, _ = cli("deviations", "list", "--format", "json", "--rule", "progress_lag")
    [row] = json.loads(out)
    assert code == 0 and set(row) == JSON_KEYS | {"first_found_on", "last_found_on"}
    dev_id = str(row["id"])
    code, out, _ = cli("deviations", "list")
    assert code == 0 and "progress_lag" in out
    # a trial: 100,000 characters of --by were stored, and the line saying so took minutes to print
    code, out, err = cli("deviations", "ack", dev_id, "--by", "ک" * 101, "--reason", "در دست پیگیری")
    assert code == 2 and "--by: a name of at most 100 characters, please (this one has 101)" in err
    code, out, err = cli("deviations", "ack", dev_id, "--by", "کارشناس", "--reason", "در دست پیگیری")
    assert code == 0, err
    code, out, err = cli("deviations", "acknowledge", dev_id, "--by", "کارشناس", "--reason", "دوباره")  # the alias
    assert code == 2 and "is acknowledged by کارشناس" in err
    code, out, err = cli("deviations", "dismiss", dev_id, "--by", "کارشناس", "--reason", "هدف اشتباه")
    assert code == 0, err
    code, out, _ = cli("deviations", "show", dev_id)
    assert code == 0 and "dismissed" in out and "acknowledged" in out and "opened" in out
    code, out, _ = cli("deviations", "list", "--format", "json", "--rule", "progress_lag")
    assert json.loads(out) == []
    code, out, _ = cli("deviations", "list", "--format", "json", "--rule", "progress_lag", "--include-dismissed")
    assert [r["status"] for r in json.loads(out)] == ["dismissed"]
    code, out, err = cli("deviations", "show", "99999")
    assert code == 2 and "no deviation with id 99999" in err


@pytest.mark.slow_on_postgresql  # what a terminal shows, the same from either store
def test_deviations_show_prints_portal_text_and_reasons_as_they_are(cli):
    # review: a table cell read as Rich markup — «[/x]» in a reason ended the command with MarkupError,
    # «[m2]» vanished
    cli("reconcile", "--as-of", "1405/09/02")
    code, out, _ = cli("deviations", "list", "--format", "json", "--rule", "progress_lag")
    dev_id = str(json.loads(out)[0]["id"])
    code, _out, err = cli("deviations", "ack", dev_id, "--by", "کارشناس [m2]",
                          "--reason", "بازدید [/x] شد [bold]")
    assert code == 0, err
    code, out, err = cli("deviations", "show", dev_id)
    flat = "".join(out.split())
    assert code == 0 and err == "" and "بازدید[/x]شد[bold]" in flat and "کارشناس[m2]" in flat, (out, err)


def test_inspections_import_lists_bad_rows(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("project_code,date,observed_progress,inspector,remarks\n"
                   "1305012007-003,1405/08/10,120,علی,\n0000,1405/08/10,50,علی,\n", encoding="utf-8")
    code, out, err = cli("inspections", "import", str(bad))
    assert code == 2
    assert "line 2: observed_progress '120' is outside 0–100" in err and "line 3: unknown project code '0000'" in err
    good = tmp_path / "good.csv"
    good.write_text("project_code,date,observed_progress,inspector,remarks\n"
                    "1305012007-003,1405/08/10,50,علی,\n", encoding="utf-8")
    code, out, err = cli("inspections", "import", str(good))
    assert code == 0 and "1 imported" in out
    code, out, err = cli("inspections", "import", str(good))
    assert code == 0 and "0 imported, 0 updated, 1 unchanged" in out


@pytest.mark.parametrize("store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_an_import_held_up_by_another_stuck_half_way_is_one_line_and_exit_1(cli, engine, tmp_path, monkeypatch):
    """PostgreSQL: imports take a lock one at a time; one stuck half-way holds the command for at most
    IMPORT_WAIT_SECONDS (1 s here), which then stores nothing and says so in one line (exit 1: the
    file is not at fault, so not 2; nothing to fix, run it again)."""
    import threading
    from datetime import date

    from reconcile import inspections as insp
    from store.models import FieldInspection

    monkeypatch.setattr(insp, "IMPORT_WAIT_SECONDS", 1)  # SQLite: an import waits the busy timeout, as every writer
    holding, release = threading.Event(), threading.Event()

    def stuck(_conn, _result) -> None:
        holding.set()
        assert release.wait(60)

    header = "project_code,date,observed_progress,inspector,remarks\n"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(header + "1305012007-003,1405/08/10,50,علی,\n", encoding="utf-8")
    second.write_text(header + "1305012007-003,1405/08/20,60,علی,\n", encoding="utf-8")
    other = threading.Thread(target=insp.import_file, args=(engine, first),
                             kwargs={"today": date(2026, 12, 1), "also": stuck}, daemon=True)
    other.start()
    try:
        assert holding.wait(60)
        code, out, err = cli("inspections", "import", str(second))
    finally:
        release.set()
        other.join(60)
    assert code == 1 and out == "", (code, out, err)
    assert err.strip().splitlines() == [
        "error: second.csv: another import of field visits has been writing to the store for over 1 s; "
        "nothing imported: import the file again once it has ended"], err
    with engine.connect() as conn:
        dates = conn.execute(sa.select(FieldInspection.__table__.c.visited_on)).scalars().all()
    assert [d.isoformat() for d in dates] == ["2026-11-01"]  # the first's 1405/08/10, not the second's


def test_the_terminal_writes_a_figure_to_the_places_every_other_output_does(engine, store_url, monkeypatch,
                                                                            tmp_path, capsys):
    """A trial: `reconcile`, `deviations list` and `deviations show` wrote a credit stage that exceeds
    the one before by 0.50005 (0.5001 as the rule rounds it: over the tolerance of 0.5) as stored,
    «100.50005», where the console, the e-mails and the report write «۱۰۰٫۵۰۰۱»: the figure apart
    from the tolerance's mark, to the places its rule needs (present.figure), not to every place kept.
    The run's own findings, an incremental run's carried ones, the list and one deviation alike."""
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    monkeypatch.chdir(tmp_path)
    store = Store(engine)
    store.project(total=(100, 100, 100, "100.50005"))

    def cli(*argv: str) -> str:
        code, (out, err) = main(list(argv)), capsys.readouterr()
        assert code == 0, err
        return out

    def credit_line(out: str) -> str:
        [line] = [line for line in out.splitlines() if "credit_inconsistency" in line and "1405" in line]
        return line

    first = credit_line(cli("reconcile", "--as-of", "1405/09/02"))  # the run's findings
    carried = credit_line(cli("reconcile", "--as-of", "1405/09/03"))  # found again without judging
    listed = credit_line(cli("deviations", "list"))
    for line in (first, carried, listed):
        assert line.split()[5:8] == ["100", "100.5001", "0.5001"], line
    dev_id = listed.split()[0]
    shown = cli("deviations", "show", dev_id)
    [figures] = [line for line in shown.splitlines() if "planned / actual / measure" in line]
    assert "100 / 100.5001 / 0.5001" in figures  # the named figures below it stay as stored, exact

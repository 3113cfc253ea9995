"""`budgetwatch report` and `budgetwatch review` through budgetwatch.cli.main: files written, one
clear line and the documented exit code for bad input (2), a period in the wrong state (3) and a
diff that found changed figures (4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from budgetwatch.cli import main
from tests.reports.builders import make_province

# the commands' words and exit codes, the same on either store: their PostgreSQL variant is `-m slow`
# (README, "Tests"; the report's figures are read from PostgreSQL by tests/reports/test_model.py)
pytestmark = pytest.mark.slow_on_postgresql


@pytest.fixture
def cli(engine, store_url, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    monkeypatch.chdir(tmp_path)
    make_province(engine)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_the_report_is_written_as_excel_or_html(cli, tmp_path):
    code, _, err = cli("report", "--as-of", "1405/09/04", "--output", str(tmp_path / "r.xlsx"))
    assert code == 0, err
    assert (tmp_path / "r.xlsx").read_bytes()[:2] == b"PK"
    code, _, err = cli("report", "--as-of", "۱۴۰۵/۰۹/۰۴", "--county", "اهواز", "--output", str(tmp_path / "r.html"))
    assert code == 0, err
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "سه‌ماهه دوم ۱۴۰۵" in page  # the latest quarter closed on the as-of day
    assert "شهرستان: اهواز" in page and "P-2" not in page  # P-2 is in Dezful


DAY = ("--as-of", "1405/09/04")


@pytest.mark.parametrize("argv, message", [
    ((*DAY, "--output", "r.pdf"), "unknown extension '.pdf'"),
    ((*DAY, "--output", "r"), "unknown extension '(none)'"),
    ((*DAY, "--output", "no/such/folder/r.html"), "does not exist"),
    ((*DAY, "--county", "تهران", "--output", "r.html"), "unknown county 'تهران'"),
    ((*DAY, "--agency", "999", "--output", "r.html"), "unknown agency '999'"),
    ((*DAY, "--group", "finance", "--output", "r.html"), "--group 'finance'"),
    ((*DAY, "--year", "99", "--output", "r.html"), "--year 99: not a Jalali fiscal year a portal can hold (1390-1500"),
    ((*DAY, "--year", "1300", "--output", "r.html"), "--year 1300: not a Jalali fiscal year a portal can hold (1390-1500"),
    (("--as-of", "1405/13/01", "--output", "r.html"), "--as-of '1405/13/01'"),
    # a script's empty variable: taken as no filter, it wrote the whole province's report (a trial)
    ((*DAY, "--county", "", "--output", "r.html"), "--county '': empty"),
    ((*DAY, "--agency", " , ", "--output", "r.html"), "--agency ' , ': empty"),
    ((*DAY, "--group", "", "--output", "r.xlsx"), "--group '': empty"),
])
def test_bad_input_is_one_line_and_exit_code_2(cli, tmp_path, argv, message):
    code, _, err = cli("report", *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("r.*"))


def test_a_year_the_store_does_not_hold_is_refused_not_reported_as_zeros(cli, tmp_path):
    code, _, err = cli("report", "--year", "1390", "--quarter", "2", "--as-of", "1405/09/04",
                       "--output", str(tmp_path / "r.html"))
    assert code == 2 and "the store holds no project or agreement of 1390" in err
    assert not (tmp_path / "r.html").exists()


def test_a_quarter_not_yet_closed_is_exit_code_3(cli, tmp_path):
    code, _, err = cli("report", "--year", "1405", "--quarter", "3", "--as-of", "1405/09/04",
                       "--output", str(tmp_path / "r.html"))
    # the terminal writes days in Jalali, ISO beside (docs/decisions.md); the ISO day came first
    assert code == 3 and "1405 Q3 is not closed on 1405/09/04 (2026-11-25): it ends on 1405/09/30 (2026-12-21)" in err
    # on its last day: said when it can be reported, not "not closed on X: it ends on X" alone (a trial)
    code, _, err = cli("report", "--year", "1405", "--quarter", "2", "--as-of", "1405/06/31",
                       "--output", str(tmp_path / "r.html"))
    assert code == 3 and "it ends on 1405/06/31 (2026-09-22) and can be reported from 1405/07/01 (2026-09-23)" in err


def test_a_report_as_of_a_day_still_to_come_is_refused(cli, tmp_path):
    # a trial: `report --as-of 1406/02/01` wrote a report counting every report not in yet as overdue
    from datetime import timedelta

    from foundation.jalali import format_jalali, today_tehran

    tomorrow = today_tehran() + timedelta(days=1)
    code, _, err = cli("report", "--as-of", tomorrow.isoformat(), "--output", str(tmp_path / "r.html"))
    assert code == 2, err
    assert (f"--as-of {format_jalali(tomorrow, persian_digits=False)} ({tomorrow.isoformat()}) is after today"
            in err.replace("\n", " "))
    assert not (tmp_path / "r.html").exists()


def test_a_projects_s_curve(cli, tmp_path):
    code, _, err = cli("report", "project", "P-1", "--output", str(tmp_path / "p.html"))
    assert code == 0, err
    assert "<polyline" in (tmp_path / "p.html").read_text(encoding="utf-8")
    assert cli("report", "project", "P-404", "--output", str(tmp_path / "p.html"))[0] == 2
    code, _, err = cli("report", "project", "P-1", "--output", str(tmp_path / "p.xlsx"))
    assert code == 2 and "use .html" in err


def test_review_approve_list_and_diff(cli, engine, tmp_path):
    code, out, err = cli("review", "approve", "--year", "1405", "--quarter", "2", "--by", "مریم احمدی",
                         "--note", "بدون ملاحظه")
    assert code == 0, err
    assert "1405 Q2 approved by مریم احمدی" in out
    assert sorted(p.name for p in (tmp_path / "data" / "archive" / "1405-Q2").iterdir()) == [
        "figures.json", "manifest.json", "report.html", "report.xlsx"]
    code, _, err = cli("review", "approve", "--year", "1405", "--quarter", "2", "--by", "دیگری")
    assert code == 3 and "never rewritten" in err
    assert re.search(r"approved by مریم احمدی on 1405/\d\d/\d\d \d\d:\d\d \(Tehran\)", err), err  # as the terminal writes times
    code, out, _ = cli("review", "list")
    assert code == 0 and "approved" in out and "intact" in out and "مریم احمدی" in out
    code, out, _ = cli("review", "diff", "--year", "1405", "--quarter", "2")
    assert code == 0 and "agrees" in out
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE expense_credit SET spent = 30 WHERE chapter = 2"))
    code, out, _ = cli("review", "diff", "--year", "1405", "--quarter", "2")
    assert code == 4
    assert re.search(r"province total +│ absorbed credit \(million rials\) +│ +775 │ +780 ", out), out
    code, _, err = cli("review", "diff", "--year", "1405", "--quarter", "1")
    assert code == 3 and "not approved" in err


def test_review_approve_of_an_open_quarter_is_exit_code_3(cli):
    from foundation.jalali import format_jalali, today_tehran

    code, _, err = cli("review", "approve", "--year", "1406", "--quarter", "1", "--by", "مریم احمدی")
    # as `report` says it (a trial: the approval's shorter line named neither today nor the first day)
    today = today_tehran()
    assert code == 3, err
    assert (f"1406 Q1 is not closed on {format_jalali(today, persian_digits=False)} ({today.isoformat()}): it ends "
            "on 1406/03/31 (2027-06-21) and can be reported from 1406/04/01 (2027-06-22)") in err


def test_review_diff_is_readable_by_the_consolidation_group(cli, engine):
    assert cli("review", "approve", "--year", "1405", "--quarter", "2", "--by", "مریم احمدی")[0] == 0
    with engine.begin() as conn:  # corrections after the sign-off, the last below the report's rounding
        for sql in ("UPDATE progress_report SET progress = 14 WHERE quarter = 1 AND progress = 10",
                    "UPDATE expense_credit SET spent = 30.4 WHERE chapter = 2",
                    "UPDATE progress_report SET progress = 40.000001 WHERE quarter = 2 AND progress = 40"):
            conn.execute(sa.text(sql))
    code, out, _ = cli("review", "diff", "--year", "1405", "--quarter", "2")
    assert code == 4
    for name in ("subject", "figure", "archived", "store now"):
        assert name in out
    assert re.search(r"project P-2, Q1 +│ reported progress +│ +10% │ +14% ", out), out  # up to one place, as the report
    assert re.search(r"agency 118 \S.* │ absorption \(absorbed / allocated\) +│ +64\.3% │ +65\.8% ", out), out
    assert re.search(r"project P-1, Q2 +│ reported progress +│ +40\.000000% │ +40\.000001% \* ", out), out
    assert "* the report rounds both to the same figure" in out
    assert "project/" not in out and "total/" not in out  # no machine keys
    assert not re.search(r"\d\.\d{9}", out)  # no 28-digit decimals


def test_the_scope_names_what_was_matched_not_what_was_typed(cli, engine, tmp_path):
    # found by a new user: `--county 06 --county "ايذه"` put «شهرستان: ۰۶، ايذه» on the cover while the
    # rows said اهواز and ایذه; `--agency 305` put «دستگاه: ۳۰۵», a code in Persian digits
    import openpyxl

    from tests.reports.builders import Province

    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE county SET code = '06' WHERE name = 'اهواز'"))
    Province(engine).county("ایذه", code="07")
    scope = ("--county", "06", "--county", "ايذه", "--agency", "305")  # Arabic yeh, as typed on some keyboards
    code, _, err = cli("report", *DAY, *scope, "--output", str(tmp_path / "r.html"))
    assert code == 0, err
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    # an agency's code after its name as the e-mails write it (trial: «(305)» beside the e-mails' «(کد 161)»)
    assert "دامنه: شهرستان: اهواز، ایذه؛ دستگاه: اداره کل راه و شهرسازی (کد <bdi>305</bdi>)</span>" in page
    code, _, err = cli("report", *DAY, *scope, "--output", str(tmp_path / "r.xlsx"))
    assert code == 0, err
    cover = {row[0]: row[1] for row in openpyxl.load_workbook(tmp_path / "r.xlsx")["گزارش"].iter_rows(values_only=True)}
    assert cover["دامنه"] == "شهرستان: اهواز، ایذه؛ دستگاه: اداره کل راه و شهرسازی (کد \u2066305\u2069)"


def test_an_unknown_county_is_refused_saying_which_values_are_accepted(cli, engine, tmp_path):
    # found by a new user: `--county 4` (the county_id `reconcile --format json` prints) was refused, and
    # the code 06 it takes was shown nowhere
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE county SET code = '06' WHERE name = 'اهواز'"))
        ahvaz = conn.execute(sa.text("SELECT id FROM county WHERE name = 'اهواز'")).scalar_one()
    code, _, err = cli("report", *DAY, "--county", str(ahvaz), "--output", str(tmp_path / "r.html"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"unknown county '{ahvaz}'" in err and f"{ahvaz} is the store's id of اهواز" in err
    assert "its code is 06" in err and "اهواز (06)" in err and "دزفول" in err  # the accepted values
    assert not (tmp_path / "r.html").exists()


def test_an_output_inside_the_signed_archive_is_refused(cli, tmp_path):
    # found by a new user: as root (0444 stops nothing) `report --output data/archive/1405-Q2/report.html`
    # overwrote the signed report, and `review list` then said ALTERED OR MISSING
    assert cli("review", "approve", "--year", "1405", "--quarter", "2", "--by", "مریم احمدی")[0] == 0
    signed = tmp_path / "data" / "archive" / "1405-Q2" / "report.html"
    before = signed.read_bytes()
    for target, command in ((signed, ("report", *DAY)), (tmp_path / "data" / "archive" / "new.xlsx", ("report", *DAY)),
                            (tmp_path / "data" / "archive" / "1405-Q2" / ".." / "p.html", ("report", "project", "P-1")),
                            (Path("data/archive/1405-Q2/report.html"), ("report", *DAY))):  # relative, from the cwd
        code, _, err = cli(*command, "--output", str(target))
        assert code == 2 and "inside the signed archive" in err and len(err.strip().splitlines()) == 1, err
    assert signed.read_bytes() == before
    assert sorted(p.name for p in signed.parent.parent.iterdir()) == ["1405-Q2"]
    code, out, _ = cli("review", "list")
    assert code == 0 and "intact" in out and "ALTERED" not in out


def test_a_report_that_fails_to_write_leaves_the_file_it_would_replace(cli, tmp_path, monkeypatch):
    # found by a new user: the report was written in place, so a failed write left a truncated file
    import os

    target = tmp_path / "r.html"
    target.write_text("the report of last week", encoding="utf-8")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as full:  # undone alone: the fixture's store and cwd stay
        full.setattr(os, "fsync", disk_full)
        code, _, err = cli("report", *DAY, "--output", str(target))
    assert code == 2 and "cannot write there (No space left on device)" in err
    assert target.read_text(encoding="utf-8") == "the report of last week"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    code, _, err = cli("report", *DAY, "--output", str(target))
    assert code == 0 and "<html" in target.read_text(encoding="utf-8")


# A trial by a consolidation group member: `review list` said ALTERED OR MISSING while `review diff`
# reported a forged figure as archived, and with report.html moved out said the store agrees.

def test_review_diff_refuses_an_altered_or_incomplete_archive_with_exit_code_3(cli, tmp_path):
    import json
    import os
    import stat

    assert cli("review", "approve", "--year", "1405", "--quarter", "2", "--by", "talfiq")[0] == 0
    folder = tmp_path / "data" / "archive" / "1405-Q2"
    figures = folder / "figures.json"
    data = json.loads(figures.read_text(encoding="utf-8"))
    data["project/P-1/q2/reported"] = "90"
    os.chmod(figures, stat.S_IRUSR | stat.S_IWUSR)
    figures.write_text(json.dumps(data), encoding="utf-8")
    code, out, _ = cli("review", "list")
    assert code == 0 and "ALTERED OR MISSING" in out
    code, out, err = cli("review", "diff", "--year", "1405", "--quarter", "2")
    assert code == 3 and "90%" not in out and len(err.strip().splitlines()) == 1
    assert "1405 Q2" in err and "figures.json altered" in err, err
    figures.unlink()  # the rest intact, figures.json gone
    (folder / "report.html").rename(tmp_path / "report.html")
    code, out, err = cli("review", "diff", "--year", "1405", "--quarter", "2")
    assert code == 3 and "agrees" not in out
    assert "report.html missing" in err and "figures.json missing" in err, err


def test_a_report_as_of_a_day_before_the_sign_off_does_not_show_it(cli, tmp_path):
    # the trial: as of 1405/07/10, the cover read «بررسی نهایی گروه تلفیق: ۱۴۰۵/۰۹/۱۶» (the sign-off, made today)
    assert cli("review", "approve", "--year", "1405", "--quarter", "2", "--by", "talfiq")[0] == 0
    code, _, err = cli("report", "--year", "1405", "--quarter", "2", "--as-of", "1405/07/10",
                       "--output", str(tmp_path / "asof.html"))
    assert code == 0, err
    page = (tmp_path / "asof.html").read_text(encoding="utf-8")
    assert "بررسی نهایی گروه تلفیق: انجام نشده" in page
    code, _, err = cli("report", "--year", "1405", "--quarter", "2", "--output", str(tmp_path / "today.html"))
    assert code == 0, err
    assert "بررسی نهایی گروه تلفیق: انجام نشده" not in (tmp_path / "today.html").read_text(encoding="utf-8")

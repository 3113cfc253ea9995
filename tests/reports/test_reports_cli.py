"""`budgetwatch report` and `budgetwatch review` through budgetwatch.cli.main: files written, one
clear line and the documented exit code for bad input (2), a period in the wrong state (3) and a
diff that found changed figures (4)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from budgetwatch.cli import main
from tests.reports.builders import make_province


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
    ((*DAY, "--year", "99", "--output", "r.html"), "--year '99'"),
    (("--as-of", "1405/13/01", "--output", "r.html"), "--as-of '1405/13/01'"),
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
    assert code == 3 and "1405 Q3 is not closed" in err


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
    code, _, err = cli("review", "approve", "--year", "1406", "--quarter", "1", "--by", "مریم احمدی")
    assert code == 3 and "not closed: it ends on 1406/03/31 (2027-06-21)" in err


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
    assert re.search(r"project P-2, Q1 +│ reported progress +│ +10% │ +14% ", out), out
    assert re.search(r"agency 118 \S.* │ absorption \(absorbed / allocated\) +│ +64\.3% │ +65\.8% ", out), out
    assert re.search(r"project P-1, Q2 +│ reported progress +│ +40\.000000% │ +40\.000001% \* ", out), out
    assert "* the report rounds both to the same figure" in out
    assert "project/" not in out and "total/" not in out  # no machine keys
    assert not re.search(r"\d\.\d{9}", out)  # no 28-digit decimals

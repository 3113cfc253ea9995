"""Output for people and scripts (issue 12, item 14): export as CSV for Excel, Jalali twins of ISO
dates, sync runs as JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa

from budgetwatch.cli import main
from store.db import open_store
from store.models import ProjectYear

from reconcile_builders import Store


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    store = Store(engine)
    py = store.project()
    store.report(py, 1, 30, reported_on="1405/04/05")
    with engine.begin() as conn:  # portal text that a spreadsheet would run as a formula
        conn.execute(sa.update(ProjectYear.__table__).values(title='=HYPERLINK("http://x","پل")'))
    a = store.agreement()
    o = store.operation(a)
    store.performance(o, 1, 80, 90, reported_on="1405/04/10")
    engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f'database:\n  url: "{url}"\n', encoding="utf-8")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_export_csv_opens_in_excel_with_persian_and_no_formula(cli, tmp_path):
    out_file = tmp_path / "projects.csv"
    code, _out, err = cli("export", "projects", "--format", "csv", "-o", str(out_file))
    assert code == 0, err
    raw = out_file.read_bytes()
    assert raw.startswith("\ufeff".encode())  # the BOM: Excel reads the file as UTF-8
    [row] = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert row["title"] == '\'=HYPERLINK("http://x","پل")'  # inert text, not a formula
    assert (row["q1_progress"], row["q1_reported_on"], row["q1_reported_on_jalali"]) == ("30", "2026-06-26",
                                                                                        "1405/04/05")
    assert row["agency_name"] == "اداره کل راه و شهرسازی" and row["target_q2"] == "45"


def test_export_agreements_csv_has_a_row_per_operation(cli, tmp_path):
    code, out, err = cli("export", "agreements", "--format", "csv")
    assert code == 0, err
    [row] = list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))
    assert (row["operation_code"], row["q1_quantity"], row["q1_spent"], row["q1_reported_on_jalali"]) == (
        "11002-03", "80", "90", "1405/04/10")


def test_export_jsonl_gives_each_iso_date_its_jalali_twin(cli):
    code, out, _err = cli("export", "projects")
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["reports"][0]["reported_on"] == "2026-06-26"
    assert record["reports"][0]["reported_on_jalali"] == "1405/04/05"


def test_runs_as_json_with_iso_and_jalali_times(cli):
    code, out, err = cli("runs", "--format", "json")
    assert code == 0, err
    runs = json.loads(out)
    assert {r["id"] for r in runs} == {1, 2}
    assert runs[0]["started_at"].startswith("2026-01-01T00:00:00") and runs[0]["started_at_jalali"] == "1404/10/11 03:30"
    assert cli("runs", "--format", "xml")[0] == 2
    code, out, err = cli("runs")  # the table writes the same Jalali time, in the ASCII digits of every command
    assert code == 0, err
    assert "1404/10/11 03:30" in out


@pytest.mark.parametrize(("kind", "rule", "figures", "shown"), [
    ("capital", "progress_lag", ("59", "29", "30"), ("59%", "29%", "30 pp")),
    ("capital", "spend_progress_gap", ("0.67", "0.05", "0.62"), ("67%", "5%", "62 pp")),
    ("expense", "operation_shortfall", ("1000", "399", "0.399"), ("1,000", "399", "39.9%")),
    ("expense", "unit_cost_overrun", ("2", "2.5", "1.25"), ("2", "2.5", "1.25x")),
    ("capital", "credit_inconsistency", ("1250", "1300.5", "50.5"), ("1,250", "1,300.5", "50.5")),
    ("capital", "completion_overdue", ("100", "99.9", "3"), ("100%", "99.9%", "3 y")),
    ("capital", "missing_report", ("45", None, None), ("45%", "", "")),
])
def test_the_tables_write_each_figure_in_its_rules_unit(kind, rule, figures, shown):
    # a trial read "0.67 / 0.05 / 0.62" for a share beside "59 / 29 / 30" in the same columns
    from decimal import Decimal
    from types import SimpleNamespace

    from budgetwatch.commands.reconcile import _figures

    planned, actual, measure = (Decimal(v) if v is not None else None for v in figures)
    row = SimpleNamespace(kind=kind, rule=rule, planned=planned, actual=actual, measure=measure, bounds=())
    assert _figures(row) == shown


@pytest.mark.parametrize(("kind", "rule", "figures", "numbers", "shown"), [
    # a trial: the terminal wrote the stored figures exact where the console, the e-mails and the
    # report wrote them to the places their rule needs (present.figure): 600.50005 / ۶۰۰٫۵۰۰۱
    ("capital", "credit_inconsistency", ("600", "600.50005", "0.50005"), {"threshold": 0.5},
     ("600", "600.5001", "0.5001")),
    ("capital", "credit_inconsistency", ("10000", "10000.50005", "0.50005"), {"threshold": 0.5},
     ("10,000", "10,000.5001", "0.5001")),
    # a gap of 4.99995 is judged 5 (four places): on its threshold, which the figures do not part from
    ("capital", "progress_lag", ("33.99995", "29", "4.99995"), {"threshold": 5, "gap": 5, "next": 15},
     ("34%", "29%", "5 pp")),
    ("expense", "unit_cost_overrun", ("2", "2.3999", "1.19995"), {"threshold": 1.2, "ratio": 1.2, "next": 1.5},
     ("2", "2.4", "1.2x")),
])
def test_the_tables_write_each_figure_as_every_other_output_does(kind, rule, figures, numbers, shown):
    from decimal import Decimal
    from types import SimpleNamespace

    from budgetwatch.commands.reconcile import _figures
    from foundation import present

    planned, actual, measure = (Decimal(v) for v in figures)
    bounds = present.bounds_of(numbers)
    row = SimpleNamespace(kind=kind, rule=rule, planned=planned, actual=actual, measure=measure, bounds=bounds)
    assert _figures(row) == shown
    # as the console and the e-mails write them (present.figure), in the terminal's digits
    for value, other, text in ((planned, actual, shown[0]), (actual, planned, shown[1])):
        assert present.in_ascii(present.figure(kind, rule, value, other=other, bounds=bounds, unit=False)) == text

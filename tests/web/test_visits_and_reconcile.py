"""Field visits from the form and from a CSV file (checked as `inspections import` checks them, all
or nothing), and a reconciliation started from the page (one at a time, progress, result)."""

from __future__ import annotations

import html as html_lib
import re
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import reconcile
from foundation import present
from store.models import FieldInspection, Project, ProjectYear
from store.users import recent_actions
from tests.web.conftest import csrf_of

fi = FieldInspection.__table__


def _projects(engine) -> None:
    with engine.begin() as conn:
        for i, (code, agency) in enumerate((("1305012007-003", "301"), ("1305012007-004", "311")), start=1):
            conn.execute(sa.insert(Project.__table__).values(id=i, code=code))
            conn.execute(sa.insert(ProjectYear.__table__).values(
                project_id=i, fiscal_year=1405, title=f"پروژهٔ {i}", title_key=f"p{i}", agency_code=agency,
                agreement_status="exchanged", progress_at_year_start=10, target_q1=20, target_q2=35))


def _visits(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(fi).order_by(fi.c.id)).all()


def _problems(html: str) -> list[str]:
    """The bad lines a refused file lists, as text (tags dropped, the isolates around codes removed)."""
    section = re.search(r'<section class="flash error".*?</section>', html, re.S)
    assert section, "no list of problems"
    items = re.findall(r"<li>(.*?)</li>", section.group(0), re.S)
    return [re.sub(r"<[^>]+>|[\u2066-\u2069]", "", html_lib.unescape(item)) for item in items]


OUTSIDE = "پروژهٔ 1305012007-004 از دستگاهی بیرون از گروه‌های کارشناسی شماست"


def test_a_visit_recorded_in_the_form_is_stored_with_who_recorded_it(sqlite_store):
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    response = client.post("/visits", data={"csrf": csrf_of(client), "project_code": "1305012007-003",
                                            "date": "۱۴۰۵/۰۸/۱۵", "observed_progress": "۴۲٫۵",
                                            "inspector": "علی رضایی", "remarks": "<b>کارگاه فعال</b>"})
    assert response.status_code == 200 and "بازدید ثبت شد" in response.text
    assert response.url.path == "/projects/1305012007-003"
    assert "&lt;b&gt;کارگاه فعال&lt;/b&gt;" in response.text and "۴۲٫۵٪" in response.text
    (visit,) = _visits(sqlite_store.engine)
    assert (visit.project_code, visit.visited_on, visit.observed_progress) == ("1305012007-003", date(2026, 11, 6),
                                                                              Decimal("42.5"))
    assert visit.source_file == "console-social.csv"
    with sqlite_store.engine.connect() as conn:
        acts = recent_actions(conn, username="social")
    assert acts[0].action == "visit" and acts[0].target == "1305012007-003"


def test_an_inspectors_name_longer_than_a_name_is_refused_and_a_long_one_wraps(sqlite_store):
    # a trial: a 3,000-letter inspector was recorded, and the visits tables grew 15,000 px wide
    from reconcile.inspections import MAX_INSPECTOR

    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    assert f'name="inspector" value="' in client.get("/visits").text
    assert f'maxlength="{MAX_INSPECTOR}"' in client.get("/visits").text.split('name="inspector"')[1].split(">")[0]
    visit = {"csrf": csrf_of(client), "project_code": "1305012007-003", "date": "۱۴۰۵/۰۸/۱۵", "observed_progress": "۴۲"}
    refused = client.post("/visits", data={**visit, "inspector": "ب" * (MAX_INSPECTOR + 1)})
    assert refused.status_code == 400 and _visits(sqlite_store.engine) == []
    assert (f"نام بازدیدکننده {present.number(MAX_INSPECTOR + 1)} نویسه است؛ حداکثر "
            f"{present.number(MAX_INSPECTOR)} نویسه") in " ".join(_problems(refused.text))
    done = client.post("/visits", data={**visit, "inspector": "ب" * MAX_INSPECTOR})
    assert "بازدید ثبت شد" in done.text and '<td class="who">' + "ب" * MAX_INSPECTOR in done.text  # wraps (css)


def test_a_visit_to_a_code_typed_in_persian_digits_leads_to_its_project(sqlite_store):
    # found by a new user: the code was stored canonical, but the page then sent the browser to
    # /projects/۱۳۰۵…, a page not found that also said the visit was recorded
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    response = client.post("/visits", data={"csrf": csrf_of(client), "project_code": "۱۳۰۵۰۱۲۰۰۷-۰۰۳",
                                            "date": "۱۴۰۵/۰۸/۱۵", "observed_progress": "۴۲٫۵", "inspector": "علی"})
    assert response.status_code == 200 and response.url.path == "/projects/1305012007-003"
    assert "بازدید ثبت شد" in response.text
    with sqlite_store.engine.connect() as conn:
        assert recent_actions(conn, username="social")[0].target == "1305012007-003"
    assert client.get("/projects/۱۳۰۵۰۱۲۰۰۷-۰۰۳").status_code == 200  # an address typed so finds it too
    assert client.get("/projects/not a code!").status_code == 404


def test_a_bad_visit_is_refused_with_the_imports_reasons_and_nothing_stored(sqlite_store):
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    response = client.post("/visits", data={"csrf": csrf_of(client), "project_code": "1305012007-003",
                                            "date": "1404/12/30", "observed_progress": "140", "inspector": ""})
    assert response.status_code == 400
    assert "هیچ بازدیدی ثبت نشد" in response.text
    # every reason said in Persian, the day that is none as typed
    for reason in ("تاریخ بازدید \u20661404/12/30\u2069: چنین روزی در تقویم شمسی نیست", "پیشرفت دیده‌شده باید میان ۰ و ۱۰۰ درصد باشد", "نام بازدیدکننده خالی است"):
        assert reason.replace("'", "&#39;") in response.text
    assert 'value="140"' in response.text  # what was typed is kept for mending
    unknown = client.post("/visits", data={"csrf": csrf_of(client), "project_code": "9999999999-001",
                                           "date": "1405/08/01", "observed_progress": "10", "inspector": "x"})
    assert unknown.status_code == 400 and _problems(unknown.text) == ["کد پروژهٔ 9999999999-001 ناشناخته است"]
    assert _visits(sqlite_store.engine) == []


def test_an_expert_cannot_record_a_visit_to_another_groups_project(sqlite_store):
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    response = client.post("/visits", data={"csrf": csrf_of(client), "project_code": "1305012007-004",
                                            "date": "1405/08/01", "observed_progress": "10", "inspector": "x"})
    assert response.status_code == 400  # the form's one visit: its reason without a line number
    assert _problems(response.text) == [OUTSIDE]
    assert _visits(sqlite_store.engine) == []


def test_an_admin_sees_the_visits_recorded_and_records_none(sqlite_store):
    # docs/console.md: an admin sees everything and acts on no deviation or visit (the page was a 403)
    _projects(sqlite_store.engine)
    expert = sqlite_store.client("social")
    expert.post("/visits", data={"csrf": csrf_of(expert), "project_code": "1305012007-003", "date": "1405/08/15",
                                 "observed_progress": "40", "inspector": "علی رضایی"})
    admin = sqlite_store.client("admin")
    page = admin.get("/visits")
    assert page.status_code == 200 and "علی رضایی" in page.text and 'href="/visits"' in page.text
    assert 'action="/visits"' not in page.text and 'action="/visits/file"' not in page.text
    assert "ثبت بازدید میدانی با کارشناسان بودجه و گروه تلفیق است" in page.text
    sent = admin.post("/visits", data={"csrf": csrf_of(admin), "project_code": "1305012007-003",
                                       "date": "1405/08/16", "observed_progress": "41", "inspector": "x"})
    uploaded = admin.post("/visits/file", data={"csrf": csrf_of(admin)},
                          files={"file": ("v.csv", MIXED.encode(), "text/csv")})
    assert sent.status_code == uploaded.status_code == 403 and len(_visits(sqlite_store.engine)) == 1


def test_a_csv_file_is_imported_all_or_nothing(sqlite_store):
    _projects(sqlite_store.engine)
    client = sqlite_store.client("tolfiq")
    bad = ("project_code,date,observed_progress,inspector,remarks\n"
           "1305012007-003,1405/08/01,30,بازرس,\n"
           "1305012007-004,1405/13/01,30,بازرس,\n")
    response = client.post("/visits/file", data={"csrf": csrf_of(client)},
                           files={"file": ("visits.csv", bad.encode(), "text/csv")})
    assert response.status_code == 400
    [problem] = _problems(response.text)
    assert problem == "سطر ۳: تاریخ بازدید 1405/13/01: چنین روزی در تقویم شمسی نیست", problem
    assert _visits(sqlite_store.engine) == []
    good = bad.replace("1405/13/01", "1405/07/20")
    response = client.post("/visits/file", data={"csrf": csrf_of(client)},
                           files={"file": ("visits.csv", good.encode(), "text/csv")})
    assert response.status_code == 200 and "۲ تازه" in response.text
    assert [v.source_file for v in _visits(sqlite_store.engine)] == ["console-tolfiq-visits.csv"] * 2


def test_a_file_naming_a_project_outside_the_experts_groups_is_refused_whole(sqlite_store):
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    content = ("project_code,date,observed_progress,inspector\n"
               "1305012007-003,1405/08/01,30,بازرس\n1305012007-004,1405/08/01,30,بازرس\n")
    response = client.post("/visits/file", data={"csrf": csrf_of(client)},
                           files={"file": ("v.csv", content.encode(), "text/csv")})
    assert response.status_code == 400 and "1305012007-004" in response.text
    assert _visits(sqlite_store.engine) == []


MIXED = ("project_code,date,observed_progress,inspector\n"
         "1305012007-003,1405/08/01,30,بازرس\n"      # line 2: good, the social expert's
         "1305012007-004,1405/08/01,30,بازرس\n"      # line 3: infrastructure's project
         "NOPE-1,1405/08/01,30,بازرس\n"              # line 4: no such project
         "1305012007-003,1405/13/01,30,بازرس\n"      # line 5: no 13th month
         "1305012007-004,1405/08/02,30,بازرس\n")     # line 6: infrastructure's again


def _upload(store, user: str, content: str = MIXED):
    """A visits file sent from the console by `user`, on a store with the projects of MIXED."""
    _projects(store.engine)
    client = store.client(user)
    return client.post("/visits/file", data={"csrf": csrf_of(client)},
                       files={"file": ("v.csv", content.encode(), "text/csv")})


def test_a_file_lists_every_bad_line_with_its_number_permission_refusals_included(sqlite_store):
    response = _upload(sqlite_store, "social")
    assert response.status_code == 400
    problems = _problems(response.text)
    assert len(problems) == 4, problems
    assert problems[0] == f"سطر ۳: {OUTSIDE}"
    assert problems[1] == "سطر ۴: کد پروژهٔ NOPE-1 ناشناخته است"
    assert problems[2] == "سطر ۵: تاریخ بازدید 1405/13/01: چنین روزی در تقویم شمسی نیست", problems[2]
    assert problems[3] == f"سطر ۶: {OUTSIDE}"
    assert _visits(sqlite_store.engine) == []  # the good line 2 is not recorded either


def test_a_refused_line_does_not_hide_the_other_bad_lines(sqlite_store):
    content = "\n".join(MIXED.splitlines()[:4]) + "\n"  # lines 2-4: good, outside the groups, unknown
    response = _upload(sqlite_store, "social", content)
    assert response.status_code == 400
    assert _problems(response.text) == [f"سطر ۳: {OUTSIDE}", "سطر ۴: کد پروژهٔ NOPE-1 ناشناخته است"]
    assert _visits(sqlite_store.engine) == []


def test_the_consolidation_group_is_refused_only_the_lines_that_are_bad_for_anyone(sqlite_store):
    response = _upload(sqlite_store, "tolfiq")
    assert response.status_code == 400
    assert [p.split(":")[0] for p in _problems(response.text)] == ["سطر ۴", "سطر ۵"]
    assert _visits(sqlite_store.engine) == []


def test_a_visits_reasons_are_said_in_persian_where_the_console_knows_them():
    from web.words import visit_reason

    assert visit_reason("unknown project code 'NOPE-1'") == ("کد پروژهٔ \u2066NOPE-1\u2069 ناشناخته است",
                                                             True)
    assert visit_reason("project P-1: its agency is outside your expert groups") == (
        "پروژهٔ \u2066P-1\u2069 از دستگاهی بیرون از گروه‌های کارشناسی شماست", True)
    assert visit_reason("inspector is empty") == ("نام بازدیدکننده خالی است", True)
    # a value's reading, the value as typed and isolated left to right (a trial found these English)
    assert visit_reason("date '1405/13/40': no such Jalali day (month must be in 1..12)") == (
        "تاریخ بازدید \u20661405/13/40\u2069: چنین روزی در تقویم شمسی نیست", True)
    assert visit_reason("observed_progress '۴۰٪٪': two percent signs") == (
        "پیشرفت دیده‌شده \u2066۴۰٪٪\u2069: دو نشان درصد دارد", True)
    assert visit_reason("project_code 'پ-۱': not a code (digits, Latin letters, '-' and '/' only)")[0].endswith(
        ": کد نیست (تنها رقم، حرف لاتین، «-» و «/»)")
    said = "a reason the console has not met"
    assert visit_reason(said) == (said, False)  # shown as it is


def test_every_reading_the_import_can_give_is_said_in_persian():
    # each reason foundation's parsers give for a visit's cell, from the parsers themselves
    from foundation.jalali import parse_day
    from foundation.persian import NormalizationError, parse_code, parse_number
    from web.words import visit_reason

    cells = [("date", parse_day, ["", "abc", "1405/13/40", "1605/01/01", "2026-02-30", "123/05/01"]),
             ("observed_progress", lambda raw: parse_number(raw, percent=True),
              ["abc", "%40%", "(40", "--40", "1,00"]),
             ("project_code", parse_code, ["", "پروژه"])]
    for name, parse, values in cells:
        for raw in values:
            try:
                parse(raw)
            except NormalizationError as exc:
                text, known = visit_reason(f"{name} {raw!r}: {exc.reason}")
                assert known and "خوانده نشد" not in text and not any("a" <= c <= "z" for c in text.split(":")[-1]), (
                    raw, exc.reason, text)
            else:
                raise AssertionError(f"{raw!r} was read")


def test_the_project_page_draws_targets_against_reports(sqlite_store):
    _projects(sqlite_store.engine)
    html = sqlite_store.client("social").get("/projects/1305012007-003").text
    assert "<svg" in html and "<path" in html and "برنامه: ۳۵٪" in html
    assert 'href="/visits?project=1305012007-003"' in html  # the social expert may record visits here
    other = sqlite_store.client("social").get("/projects/1305012007-004").text
    assert 'href="/visits?project=' not in other


@pytest.mark.slow_on_postgresql  # what the console shows of a run, not the database: its SQLite variant stays
def test_a_reconciliation_runs_in_the_background_and_a_second_start_is_refused(console_store):
    release = threading.Event()
    progress_seen = threading.Event()

    def slow_run(engine, settings, **kwargs):
        kwargs["on_progress"]("waiting for the test")
        progress_seen.set()
        assert release.wait(30)
        return reconcile.run(engine, settings, **kwargs)

    app = console_store.app(reconcile_runner=slow_run)
    tolfiq = console_store.client("tolfiq", app=app)
    response = tolfiq.post("/reconcile", data={"csrf": csrf_of(tolfiq), "year": "1405", "as_of": "1405/09/04"})
    assert response.status_code == 200 and "تطبیق آغاز شد" in response.text
    assert progress_seen.wait(10)
    page = tolfiq.get("/reconcile")
    assert page.headers["refresh"] == "2" and "waiting for the test" in page.text
    again = tolfiq.post("/reconcile", data={"csrf": csrf_of(tolfiq)})
    assert "هنوز در حال اجراست" in again.text
    release.set()
    assert app.state.console.jobs.wait(60)
    done = tolfiq.get("/reconcile")
    job = app.state.console.jobs.last
    assert job.state == "done" and job.result_years == [1405] and job.result_as_of == date(2026, 11, 25)
    assert "refresh" not in done.headers and "پایان‌یافته" in done.text and "۴ آذر ۱۴۰۵" in done.text
    assert "تطبیقی که کاربر tolfiq در" in done.text  # who started it, by display name
    # every count of the run's life, dismissed findings found again included (a new user missed them)
    assert f"یافته‌شده ولی ردشده (نادرست): {present.number(job.life['dismissed_found'])}" in done.text
    with console_store.engine.connect() as conn:
        acts = [a.action for a in recent_actions(conn, username="tolfiq")]
    assert acts[:2] == ["reconcile_end", "reconcile"]


def test_only_the_consolidation_group_starts_a_reconciliation(sqlite_store):
    app = sqlite_store.app()
    expert = sqlite_store.client("social", app=app)
    response = expert.post("/reconcile", data={"csrf": csrf_of(expert)})
    # refused as every act by role is (a trial: a 200 with a message, where the others answer 403)
    assert response.status_code == 403 and "با گروه تلفیق بودجه است" in response.text
    assert app.state.console.jobs.last is None


def test_a_bad_as_of_day_is_named_and_nothing_starts(sqlite_store):
    app = sqlite_store.app()
    tolfiq = sqlite_store.client("tolfiq", app=app)
    response = tolfiq.post("/reconcile", data={"csrf": csrf_of(tolfiq), "as_of": "1405/13/40"})
    assert "خوانا نیست" in response.text and app.state.console.jobs.last is None


def test_a_year_no_portal_holds_is_named_and_nothing_starts(sqlite_store):
    # a review: the form ran a reconciliation of year 1300 (nothing, without a word), which every
    # command refuses; the deviations list's filter takes the same years
    app = sqlite_store.app()
    tolfiq = sqlite_store.client("tolfiq", app=app)
    response = tolfiq.post("/reconcile", data={"csrf": csrf_of(tolfiq), "year": "1300"})
    assert "سال مالی «1300» درست نیست: سالی از ۱۳۹۰ تا ۱۵۰۰" in response.text
    assert app.state.console.jobs.last is None


def test_the_project_page_shows_the_change_history_of_reported_figures(sqlite_store):
    from datetime import datetime, timezone

    from store.models import ChangeLog, ProgressReport, SyncRun

    _projects(sqlite_store.engine)
    at = datetime(2026, 10, 1, 6, 30, tzinfo=timezone.utc)
    with sqlite_store.engine.begin() as conn:
        run_id = conn.execute(sa.insert(SyncRun.__table__).values(
            source="nezarat4", mode="incremental", fiscal_years="1405", started_at=at, status="success")
            .returning(SyncRun.__table__.c.id)).scalar_one()
        report_id = conn.execute(sa.insert(ProgressReport.__table__).values(
            project_year_id=1, quarter=1, progress=Decimal("32.5"), comptroller_status="approved")
            .returning(ProgressReport.__table__.c.id)).scalar_one()
        conn.execute(sa.insert(ChangeLog.__table__).values(
            run_id=run_id, entity="progress_report", entity_id=report_id, business_key="1305012007-003/1405/q1",
            field="progress", old_value="30", new_value="32.5", changed_at=at))
    html = sqlite_store.client("infra").get("/projects/1305012007-003").text
    row = html[html.index("1305012007-003/1405/q1"):][:600]
    assert "گزارش عملکرد" in html and "<td>پیشرفت</td>" in row
    assert "<td>۳۰</td><td>۳۲٫۵</td>" in row and f'href="/runs/{run_id}"' in row


@pytest.mark.slow_on_postgresql  # what the console shows of a run, not the database: its SQLite variant stays
def test_a_reconciliation_dated_after_today_is_shown_as_a_what_if_saying_why(console_store, monkeypatch):
    monkeypatch.setattr("reconcile.engine._today", lambda: date(2026, 12, 1))  # 1405/09/10
    app = console_store.app()
    tolfiq = console_store.client("tolfiq", app=app)
    tolfiq.post("/reconcile", data={"csrf": csrf_of(tolfiq), "year": "1405", "as_of": "1405/09/20"})
    assert app.state.console.jobs.wait(60)
    done = tolfiq.get("/reconcile").text
    assert "اجرای فرضی" in done and "پس از امروز" in done and "پیش از تاریخ آخرین" not in done
    with console_store.engine.connect() as conn:  # the log of acts says it recorded nothing
        [end] = [a for a in recent_actions(conn, username="tolfiq") if a.action == "reconcile_end"]
    assert end.detail.endswith("(what-if: future)")
    from web.words import act_text

    assert act_text(end.detail).endswith("اجرای فرضی، چیزی ثبت نشد")
    with console_store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconcile_run")).scalar() == 0


def test_a_runs_phases_are_shown_in_persian():
    from web.words import phase

    assert phase("judging 3/10: capital.progress_lag") == "داوری قاعدهٔ ۳ از ۱۰: عقب‌ماندگی پیشرفت فیزیکی از برنامه"
    assert phase("run 4: judging years 1404, 1405 as of 2026-11-25") == "آغاز: داوری سال‌های ۱۴۰۴، ۱۴۰۵"
    assert phase("recording deviations") == "ثبت انحراف‌ها"
    assert phase("something new") == "something new"  # shown as it is rather than hidden


def test_a_file_saved_as_excels_plain_csv_is_refused_saying_how_to_save_it_in_persian(sqlite_store):
    # found by a new user: Excel's plain CSV on a Persian Windows is Windows-1256, and the page said
    # "is not UTF-8 text (first at line 2; …)" in English, a sentence without a subject
    _projects(sqlite_store.engine)
    client = sqlite_store.client("tolfiq")
    content = "project_code,date,observed_progress,inspector\n1305012007-003,1405/08/01,30,بازرس\n"
    response = client.post("/visits/file", data={"csrf": csrf_of(client)},
                           files={"file": ("v.csv", content.encode("cp1256"), "text/csv")})
    assert response.status_code == 400
    [problem] = _problems(response.text)
    assert "UTF-8 نیست (نخستین بار در سطر ۲" in problem and "CSV UTF-8 (Comma delimited)" in problem
    assert "is not UTF-8" not in response.text and _visits(sqlite_store.engine) == []
    header = client.post("/visits/file", data={"csrf": csrf_of(client)},
                         files={"file": ("v.csv", b"code,day\n1,2\n", "text/csv")})
    [problem] = _problems(header.text)
    assert "ستون‌های سطر نخست درست نیست" in problem and "project_code,date" in problem


def _log_of_acts_gone(engine, gone: bool) -> None:
    """The console's log of acts failing (its table renamed away), then back."""
    names = ("console_action", "console_action_gone")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE {} RENAME TO {}".format(*(names if gone else names[::-1])))


def test_a_visit_and_its_line_in_the_log_of_acts_are_stored_together_or_not_at_all(sqlite_store):
    # before, the visit was committed and its line written after it: a failing log left a visit no
    # one was recorded as having entered, and a 503 that made the person wonder
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    visit = {"csrf": csrf_of(client), "project_code": "1305012007-003", "date": "1405/08/15",
             "observed_progress": "42.5", "inspector": "علی"}
    _log_of_acts_gone(sqlite_store.engine, True)
    assert client.post("/visits", data=visit).status_code == 503
    assert _visits(sqlite_store.engine) == []
    _log_of_acts_gone(sqlite_store.engine, False)
    response = client.post("/visits", data=visit)  # the same form again, once the log is back
    assert response.status_code == 200 and "بازدید ثبت شد" in response.text
    assert len(_visits(sqlite_store.engine)) == 1
    with sqlite_store.engine.connect() as conn:
        assert [(a.action, a.target) for a in recent_actions(conn, username="social")][:1] == [
            ("visit", "1305012007-003")]


def test_a_visits_file_and_its_line_in_the_log_of_acts_are_stored_together_or_not_at_all(sqlite_store):
    _projects(sqlite_store.engine)
    client = sqlite_store.client("tolfiq")
    content = "project_code,date,observed_progress,inspector\n1305012007-003,1405/08/01,30,بازرس\n"

    def send():
        return client.post("/visits/file", data={"csrf": csrf_of(client)},
                           files={"file": ("v.csv", content.encode(), "text/csv")})

    _log_of_acts_gone(sqlite_store.engine, True)
    assert send().status_code == 503
    assert _visits(sqlite_store.engine) == []
    _log_of_acts_gone(sqlite_store.engine, False)
    response = send()
    assert response.status_code == 200 and "۱ تازه" in response.text
    with sqlite_store.engine.connect() as conn:
        [act] = [a for a in recent_actions(conn, username="tolfiq") if a.action == "visits_file"]
    assert (act.target, act.detail) == ("v.csv", "1 rows: 1 new, 0 updated, 0 unchanged")


def test_a_reconciliation_is_not_started_without_its_line_in_the_log_of_acts(sqlite_store):
    app = sqlite_store.app()
    tolfiq = sqlite_store.client("tolfiq", app=app)
    token = csrf_of(tolfiq)
    _log_of_acts_gone(sqlite_store.engine, True)
    response = tolfiq.post("/reconcile", data={"csrf": token, "year": "1405"})
    assert response.status_code == 503 and app.state.console.jobs.last is None
    _log_of_acts_gone(sqlite_store.engine, False)
    response = tolfiq.post("/reconcile", data={"csrf": token, "year": "1405"})
    assert response.status_code == 200 and "تطبیق آغاز شد" in response.text
    assert app.state.console.jobs.wait(60)
    with sqlite_store.engine.connect() as conn:
        acts = [(a.action, a.target) for a in recent_actions(conn, username="tolfiq")]
    assert acts[1] == ("reconcile", "1405") and acts[0][0] == "reconcile_end"


BUSY = ("ورود دیگری از بازدیدهای میدانی بیش از ۱ ثانیه است که در پایگاه می‌نویسد؛ چیزی ثبت نشد: "
        "پس از پایان آن دوباره بفرستید")


def _said_busy(html: str) -> str:
    """The page's one error section, which must hold no list of things to fix, as text."""
    sections = re.findall(r'<section class="flash error".*?</section>', html, re.S)
    assert len(sections) == 1 and "<li>" not in sections[0] and "درست کنید" not in html, sections
    return re.sub(r"<[^>]+>|\s+", " ", sections[0]).strip()


def test_a_visit_held_up_by_another_import_stuck_half_way_is_refused_saying_so(console_store, monkeypatch):
    """PostgreSQL: imports of visits take a lock one at a time (their revisions grow in the order they
    commit: reconcile/changes.py). One stuck half-way holds the next for at most IMPORT_WAIT_SECONDS
    (1 s here); then the console says so in Persian and stores nothing, rather than hold the page."""
    import pytest

    from reconcile import inspections as insp

    engine = console_store.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite: an import waits the engine's busy timeout, like every writer")
    _projects(engine)
    monkeypatch.setattr(insp, "IMPORT_WAIT_SECONDS", 1)
    holding, release = threading.Event(), threading.Event()

    def stuck(_conn, _result) -> None:
        holding.set()
        assert release.wait(60)

    visits = console_store.config.data_dir / "stuck.csv"
    visits.parent.mkdir(parents=True, exist_ok=True)
    visits.write_text("project_code,date,observed_progress,inspector\n1305012007-004,1405/08/10,30,کریمی\n",
                      encoding="utf-8")
    other = threading.Thread(target=insp.import_file, args=(engine, visits),
                             kwargs={"today": date(2026, 12, 1), "also": stuck}, daemon=True)
    other.start()
    try:
        assert holding.wait(60)
        client = console_store.client("social")
        response = client.post("/visits", data={"csrf": csrf_of(client), "project_code": "1305012007-003",
                                                "date": "۱۴۰۵/۰۸/۱۵", "observed_progress": "۴۲",
                                                "inspector": "علی رضایی", "remarks": ""})
        # nothing sent was wrong: the sentence alone, not a list of things to fix, and the form kept
        assert response.status_code == 503, response.status_code
        assert _said_busy(response.text) == BUSY
        assert all(f'value="{v}"' in response.text for v in ("1305012007-003", "۱۴۰۵/۰۸/۱۵", "۴۲", "علی رضایی"))
        # a file held up the same way: the same sentence, nothing of it stored
        response = client.post("/visits/file", data={"csrf": csrf_of(client)}, files={"file": (
            "visits.csv", "project_code,date,observed_progress,inspector\n1305012007-005,1405/08/10,20,کریمی\n"
            .encode(), "text/csv")})
        assert response.status_code == 503, response.status_code
        assert _said_busy(response.text) == BUSY
    finally:
        release.set()
        other.join(60)
    assert [v.project_code for v in _visits(engine)] == ["1305012007-004"]  # the other's, not the form's or file's


def test_a_visits_day_typed_with_dashes_is_logged_in_iso_and_read_as_that_day(sqlite_store):
    # found by a new user: the log kept «1405-09-10» as typed and the users page read it as a
    # Gregorian day, ۰۷۸۴/۰۶/۱۹; Persian digits typed were shown as they were
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    for typed_day, typed_progress in (("1405-09-10", "37.5"), ("۱۴۰۵/۰۹/۱۱", "۴۲٫۵٪")):
        response = client.post("/visits", data={"csrf": csrf_of(client), "project_code": "1305012007-003",
                                                "date": typed_day, "observed_progress": typed_progress,
                                                "inspector": "علی"})
        assert response.status_code == 200 and "بازدید ثبت شد" in response.text
    with sqlite_store.engine.connect() as conn:
        acts = [a.detail for a in recent_actions(conn, username="social") if a.action == "visit"]
    assert acts == ["2026-12-02 42.5", "2026-12-01 37.5"]  # newest first
    log = sqlite_store.client("admin").get("/users").text
    assert "۱۴۰۵/۰۹/۱۰، پیشرفت ۳۷٫۵٪" in log and "۱۴۰۵/۰۹/۱۱، پیشرفت ۴۲٫۵٪" in log
    assert "۰۷۸۴" not in log


def test_a_line_of_the_log_already_stored_with_a_jalali_day_typed_with_dashes_shows_that_day():
    from web.words import act_text

    assert act_text("1405-09-10 37.5") == "۱۴۰۵/۰۹/۱۰، پیشرفت ۳۷٫۵٪"  # as typed before: not converted
    assert act_text("2026-12-01 37.5") == "۱۴۰۵/۰۹/۱۰، پیشرفت ۳۷٫۵٪"  # as logged now: ISO
    assert act_text("as of 2026-11-25") == "به تاریخ ۱۴۰۵/۰۹/۰۴"


def test_remarks_longer_than_the_limit_are_refused_saying_so_and_kept_for_mending(sqlite_store):
    from web.pages.visits import REMARKS_MAX

    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    form = client.get("/visits").text
    assert f'maxlength="{REMARKS_MAX}"' in form  # the browser stops at the limit too
    visit = {"csrf": csrf_of(client), "project_code": "1305012007-003", "date": "1405/08/15",
             "observed_progress": "40", "inspector": "علی"}
    long = client.post("/visits", data={**visit, "remarks": "ب" * 5000})
    assert long.status_code == 400
    assert _problems(long.text) == ["توضیح ۵٬۰۰۰ نویسه است؛ حداکثر ۱٬۰۰۰ نویسه"]
    assert "ب" * 5000 in long.text and _visits(sqlite_store.engine) == []  # what was typed, kept
    # review: counted as the import keeps the text, not as sent (a line break sent as CRLF is one)
    half = REMARKS_MAX // 2
    at_limit = client.post("/visits", data={**visit, "remarks": "ب" * half + "\r\n" + "ب" * (REMARKS_MAX - half - 1)})
    assert at_limit.status_code == 200 and [len(v.remarks) for v in _visits(sqlite_store.engine)] == [REMARKS_MAX]
    assert '<td class="remarks">' in at_limit.text  # the project's visits table wraps it (console.css)


def test_the_visits_file_may_be_csv_or_an_excel_workbook(sqlite_store):
    from openpyxl import Workbook

    _projects(sqlite_store.engine)
    client = sqlite_store.client("tolfiq")
    page = client.get("/visits").text
    assert re.search(r'<input type="file" name="file" accept="\.csv,\.xlsx[,"]', page)
    assert "CSV (UTF-8) یا کارنامهٔ Excel" in page
    book = Workbook()
    book.active.append(["project_code", "date", "observed_progress", "inspector"])
    book.active.append(["1305012007-003", "1405/08/01", 30, "بازرس"])
    path = Path(sqlite_store.config.data_dir) / "visits.xlsx"
    book.save(path)
    response = client.post("/visits/file", data={"csrf": csrf_of(client)},
                           files={"file": ("visits.xlsx", path.read_bytes(),
                                           "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")})
    assert response.status_code == 200 and "۱ تازه" in response.text
    assert [v.source_file for v in _visits(sqlite_store.engine)] == ["console-tolfiq-visits.xlsx"]


def test_a_picture_sent_as_visits_is_refused_in_persian(sqlite_store):
    # reconcile/inspections.py says a file of no text and no workbook is neither (NOT_A_TABLE)
    _projects(sqlite_store.engine)
    client = sqlite_store.client("tolfiq")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    response = client.post("/visits/file", data={"csrf": csrf_of(client)},
                           files={"file": ("photo.png", png, "image/png")})
    assert response.status_code == 400
    [problem] = _problems(response.text)
    assert problem == "پرونده نه متن CSV است، نه کارنامهٔ Excel (\u200e.xlsx\u200e): پرونده‌ای از این دو گونه بفرستید"
    assert "neither" not in response.text and _visits(sqlite_store.engine) == []


def test_the_s_curves_name_the_quarters_by_their_ordinals(sqlite_store):
    _projects(sqlite_store.engine)
    html = sqlite_store.client("social").get("/projects/1305012007-003").text
    svg = html[html.index("<svg"):html.index("</svg>")]
    labels = re.findall(r'<text[^>]*text-anchor="middle"[^>]*>([^<]*)</text>', svg)
    assert labels == ["آغاز سال", *present.QUARTER_NAMES.values()]  # presentation.md: سه‌ماهه اول, …
    assert "سه‌ماهه ۱" not in svg


def test_a_file_with_remarks_over_the_limit_is_refused_in_persian(sqlite_store):
    from web.pages.visits import REMARKS_MAX

    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    content = ("project_code,date,observed_progress,inspector,remarks\n"
               f"1305012007-003,1405/08/15,40,علی,{'ب' * (REMARKS_MAX + 5)}\n").encode()
    page = client.post("/visits/file", data={"csrf": csrf_of(client)},
                       files={"file": ("visits.csv", content, "text/csv")})
    assert page.status_code == 400 and _visits(sqlite_store.engine) == []
    assert any("توضیح ۱٬۰۰۵ نویسه است؛ حداکثر ۱٬۰۰۰ نویسه" in p for p in _problems(page.text)), _problems(page.text)


def test_a_rows_reasons_of_fixed_form_are_said_in_persian(sqlite_store):
    # a new user's trial: the reasons a row was refused were the import's English sentences
    _projects(sqlite_store.engine)
    client = sqlite_store.client("social")
    content = ("project_code,date,observed_progress,inspector\n"
               "1305012007-003,1499/01/01,40,علی\n"       # a day to come
               "1305012007-003,1405/08/15,140,علی\n"      # outside 0–100
               "1305012007-003,1405/08/16,40,\n"          # no inspector
               "1305012007-003,1405/08/17,40,علی\n"
               "1305012007-003,1405/08/17,41,علی\n").encode()  # the same visit twice
    page = client.post("/visits/file", data={"csrf": csrf_of(client)},
                       files={"file": ("visits.csv", content, "text/csv")})
    said = " | ".join(_problems(page.text))
    assert page.status_code == 400 and _visits(sqlite_store.engine) == []
    for persian in ("هنوز نرسیده است", "باید میان ۰ و ۱۰۰ درصد باشد", "نام بازدیدکننده خالی است", "تکرار سطر ۵ است"):
        assert persian in said, said
    assert "observed_progress" not in said and "inspector is empty" not in said

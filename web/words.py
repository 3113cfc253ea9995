"""Persian words the console needs that foundation/present.py does not (yet) have: the states of
sync and reconciliation runs, a deviation's events, the store's tables and a visit's columns.
Kept here, in the one module the templates read them from; the lead may move them to present.py.
"""

from __future__ import annotations

import ast
import re

from foundation import present

SYNC_STATUS = {"running": "در حال اجرا", "success": "موفق", "incomplete": "ناقص", "failed": "ناموفق",
               "interrupted": "قطع‌شده"}
RUN_STATUS = {"running": "در حال اجرا", "success": "موفق", "failed": "ناموفق", "interrupted": "قطع‌شده"}
MODES = {"full": "کامل", "incremental": "افزایشی"}
EVENTS = {"opened": "ایجاد", "escalated": "تشدید", "lowered": "کاهش شدت", "updated": "به‌روزرسانی",
          "resolved": "برطرف شد", "reopened": "بازگشایی", "acknowledged": "بررسی شد", "dismissed": "رد شد (نادرست)"}
# why a run resolved a deviation (reconcile/lifecycle.py writes them into its event): a person's own
# reason is shown as they wrote it
RUN_REASONS = {"not found": "در اجرای تطبیق یافت نشد", "gone": "در سامانه دیگر نیست"}
TABLES = {"project_year": "پروژه در سال", "progress_report": "گزارش عملکرد", "project_credit": "اعتبار پروژه",
          "field_inspection": "بازدید میدانی", "expense_agreement": "موافقتنامه", "expense_credit": "اعتبار فصل",
          "operation": "فعالیت", "operation_performance": "عملکرد فعالیت"}
JOB_STATE = {"running": "در حال اجرا", "done": "پایان‌یافته", "failed": "ناموفق"}
ACTIONS = {"login": "ورود", "login_failed": "ورود ناموفق", "acknowledge": "ثبت بررسی", "dismiss": "رد انحراف", "visit": "ثبت بازدید",
           "visits_file": "بارگذاری پرونده بازدید", "reconcile": "آغاز تطبیق", "reconcile_end": "پایان تطبیق",
           "user_add": "افزودن کاربر", "user_password": "تغییر گذرواژه", "user_disable": "غیرفعال‌سازی کاربر",
           "user_enable": "فعال‌سازی کاربر"}
AGREEMENT_STATUS = {"exchanged": "مبادله‌شده", "awaiting": "در انتظار مبادله", "amended": "اصلاحی",
                    "cancelled": "لغوشده"}


def word(table: dict[str, str]):
    """A template filter: the Persian word of a code, or the code itself when it has none."""
    return lambda code: table.get(code or "", code or "—")

# the names of the figures a rule keeps in ``numbers`` and of the evidence row's columns
LABELS = {
    "target": "برنامه", "actual": "عملکرد", "gap": "فاصله", "start": "پیشرفت آغاز سال", "planned_gain": "پیشرفت برنامه‌ای سال",
    "physical_share": "سهم پیشرفت فیزیکی", "absorbed": "جذب", "notified_total": "اعتبار ابلاغی",
    "spend_share": "سهم جذب اعتبار", "previous": "گزارش پیشین", "reported": "گزارش‌شده", "drop": "کاهش",
    "latest_progress": "آخرین پیشرفت گزارش‌شده", "observed": "پیشرفت مشاهده‌شده", "difference": "اختلاف",
    "planned_cum": "برنامهٔ انباشته", "actual_cum": "عملکرد انباشته", "ratio": "نسبت", "spent_cum": "هزینهٔ انباشته",
    "unit_cost": "بهای واحد مصوب", "actual_unit_cost": "بهای واحد واقعی", "value": "رقم", "limit": "سقف",
    "excess": "مازاد", "row": "ردیف", "stage": "مرحله", "exceeds": "بیش از", "breaks": "ناسازگاری‌ها",
    "quarter_end": "پایان سه‌ماهه", "due": "مهلت", "approval_due": "مهلت تأیید", "entered": "تاریخ ثبت",
    "reported_on": "تاریخ گزارش", "visited_on": "تاریخ بازدید", "quarter": "سه‌ماهه", "progress": "پیشرفت",
    "comptroller_status": "وضعیت ذیحساب", "decided_on": "تاریخ تصمیم ذیحساب", "remarks": "توضیح",
    "fiscal_year": "سال مالی", "quantity": "مقدار", "spent": "هزینه", "approved": "مصوب", "notified": "ابلاغی",
    "allocated": "تخصیص", "source": "منبع", "chapter": "فصل", "title": "عنوان", "code": "کد",
    "observed_progress": "پیشرفت مشاهده‌شده", "inspector": "بازدیدکننده", "project_code": "کد پروژه",
    "target_q4": "برنامهٔ پایان سال", "end_year": "سال پایان برنامه‌ای", "years_late": "سال‌های تأخیر",
    "latest_quarter": "سه‌ماههٔ آخرین گزارش", "previous_quarter": "سه‌ماههٔ گزارش پیشین",
    "reported_quarter": "سه‌ماههٔ گزارش", "operations_planned": "فعالیت‌های دارای برنامه در این دوره",
    # the evidence row's columns (store/models.py)
    "agency_code": "کد دستگاه", "location": "محل", "start_year": "سال شروع", "total_cost": "هزینهٔ کل",
    "progress_at_year_start": "پیشرفت آغاز سال", "agreement_no": "شماره موافقتنامه",
    "agreement_date": "تاریخ موافقتنامه", "agreement_status": "وضعیت موافقتنامه", "plan_code": "کد طرح",
    "target_q1": "برنامهٔ سه‌ماههٔ اول", "target_q2": "برنامهٔ سه‌ماههٔ دوم", "target_q3": "برنامهٔ سه‌ماههٔ سوم",
    "total_approved": "جمع مصوب", "total_notified": "جمع ابلاغی", "total_allocated": "جمع تخصیص",
    "total_absorbed": "جمع جذب", "last_modified": "آخرین تغییر در سامانه", "gone": "دیگر در فهرست سامانه نیست",
    "portal_id": "شناسه در سامانه", "program_code": "کد برنامه", "program_title": "عنوان برنامه", "status": "وضعیت",
    "exchanged_on": "تاریخ مبادله", "modified_at": "آخرین تغییر در سامانه", "unit": "واحد سنجش",
    "annual_target": "هدف سالانه", "source_file": "پرونده", "imported_at": "زمان ورود به سامانه",
}
# an evidence row's columns that are the store's own bookkeeping, not the portal's figures
EVIDENCE_HIDDEN = ("title_key", "inspector_key", "detail_synced",
                   "revision")  # a visits import's number (reconcile/inspections.py), not a figure of the visit
# a credit stage named in a credit_inconsistency finding ("stage", "exceeds"), by the family's words
STAGES = {"capital": {"used": "جذب", "allocated": "تخصیص", "notified": "اعتبار ابلاغی", "approved": "اعتبار مصوب"},
          "expense": {"used": "هزینه", "allocated": "تخصیص", "notified": "اعتبار ابلاغی", "approved": "اعتبار مصوب"}}


# the phases a reconciliation reports as it runs (reconcile/engine.py ``say``), as the console shows them
_PHASES = [
    (re.compile(r"(?:run \d+|what-if): judging years (.*) as of .*"),
     lambda m: f"آغاز: داوری سال‌های {present.digits(m[1].replace(', ', '، '))}"),
    (re.compile(r"judging (\d+)/(\d+): (\S+)"),
     lambda m: f"داوری قاعدهٔ {present.digits(m[1])} از {present.digits(m[2])}: {present.rule(m[3])}"),
    (re.compile(r"judging .* in a helper process"), lambda m: "داوری بخشی از قاعده‌ها در فرایندی کمکی"),
    (re.compile(r"copying the helper process's findings"), lambda m: "گردآوری یافته‌های فرایند کمکی"),
    (re.compile(r"recording deviations"), lambda m: "ثبت انحراف‌ها"),
    (re.compile(r"(?:run \d+|what-if) done: .*"), lambda m: "پایان"),
]


def phase(message: str) -> str:
    """A run's progress message in Persian; one not known here is shown as it is."""
    for pattern, words in _PHASES:
        match = pattern.fullmatch(message)
        if match:
            return words(match)
    return message


# the log of acts (store/users.py record_action) keeps its target and detail as the act wrote them,
# in English, for the CLI and an auditor; the console's users page shows them in Persian
def _role(code: str) -> str:
    from web.permissions import ROLE_NAMES

    return ROLE_NAMES.get(code, code)


def _day_text(iso: str) -> str:
    """A day the log wrote as YYYY-MM-DD, as people read it. A year below 1700 is no Gregorian
    year of this log: a Jalali day typed with dashes (the visits form logged days as typed until
    it logged them in ISO), shown as that day rather than converted into a made-up one."""
    from datetime import date

    year, month, day = iso.split("-")
    if int(year) < 1700:
        return present.digits(f"{year}/{month}/{day}")
    return present.day(date.fromisoformat(iso))


_ACT_TEXTS = [
    (re.compile(r"deviation (\d+)"), lambda m: f"انحراف {present.digits(m[1])}"),
    (re.compile(r"user (\S+)"), lambda m: f"کاربر {present.code_text(m[1])}"),
    (re.compile(r"run (\d+)"), lambda m: f"اجرای {present.digits(m[1])}"),
    (re.compile(r"all years"), lambda m: "همهٔ سال‌ها"),
    (re.compile(r"[0-9]{4}(?:,[0-9]{4})*"), lambda m: present.digits(m[0].replace(",", "، "))),
    (re.compile(r"from (\S+)"), lambda m: f"از نشانی {present.code_text(m[1])}"),
    (re.compile(r"as of today"), lambda m: "به تاریخ امروز"),
    (re.compile(r"as of ([0-9]{4}-[0-9]{2}-[0-9]{2})"), lambda m: f"به تاریخ {_day_text(m[1])}"),
    (re.compile(r"(\d+) findings in ([0-9.]+) s(?: \(what-if: (\w+)\))?"),
     lambda m: f"{present.number(int(m[1]))} یافته در {present.digits(m[2]).replace('.', '٫')} ثانیه"
               + ("" if not m[3] else "؛ اجرای فرضی، چیزی ثبت نشد")),
    (re.compile(r"role (\w+); groups (.*)"),
     lambda m: f"نقش {_role(m[1])}؛ گروه‌ها: "
               + ("، ".join(present.group(g) for g in m[2].split(",") if g != "-") or "—")),
    (re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) ([0-9.]+)"),
     lambda m: f"{_day_text(m[1])}، پیشرفت {present.percent(m[2])}"),
    (re.compile(r"(\d+) rows: (\d+) new, (\d+) updated, (\d+) unchanged"),
     lambda m: f"{present.number(int(m[1]))} ردیف: {present.number(int(m[2]))} تازه، "
               f"{present.number(int(m[3]))} به‌روزشده، {present.number(int(m[4]))} بی‌تغییر"),
]


def act_text(text: str | None) -> str:
    """An act's target or detail in Persian; one written otherwise (an error, a file name, a
    reason) is shown as it is."""
    if not text:
        return present.NOTHING
    for pattern, words in _ACT_TEXTS:
        match = pattern.fullmatch(text)
        if match:
            return words(match)
    if re.fullmatch(r"[!-~]+", text):  # one ASCII word (a code, a file's name): as it is, isolated
        return present.code_text(text)
    return text


# a bad line of a visits file or form: the import's reasons (reconcile/inspections.py) are English
# sentences shared with `budgetwatch inspections import`; those the console knows are said in Persian
_VISIT_REASONS = [
    # a row's reasons of fixed form (reconcile/inspections.py _visit); the readings of a value that is
    # no date, number or code (NormalizationError's many reasons) stay the import's own
    (re.compile(r"expected (\d+) fields, found (\d+)"),
     lambda m: f"سطر باید {present.number(int(m[1]))} ستون داشته باشد، {present.number(int(m[2]))} ستون دارد"),
    (re.compile(r"date '(.*)' \((\d{4})/(\d{2})/(\d{2})\) is in the future", re.S),
     lambda m: f"تاریخ بازدید ({present.digits(f'{m[2]}/{m[3]}/{m[4]}')}) هنوز نرسیده است"),
    (re.compile(r"observed_progress is empty"), lambda m: "پیشرفت دیده‌شده خالی است"),
    (re.compile(r"observed_progress '(.*)' is outside 0–100", re.S),
     lambda m: "پیشرفت دیده‌شده باید میان ۰ و ۱۰۰ درصد باشد"),
    (re.compile(r"observed_progress '(.*)' has more than (\d+) decimal places", re.S),
     lambda m: f"پیشرفت دیده‌شده بیش از {present.number(int(m[2]))} رقم اعشار دارد"),
    (re.compile(r"inspector is empty"), lambda m: "نام بازدیدکننده خالی است"),
    (re.compile(r"duplicate of line (\d+) \(same project, date and inspector\)"),
     lambda m: f"تکرار سطر {present.number(int(m[1]))} است (همان پروژه، تاریخ و بازدیدکننده)"),
    (re.compile(r"inspector has (\d+) characters; at most (\d+)"),
     lambda m: f"نام بازدیدکننده {present.number(int(m[1]))} نویسه است؛ حداکثر {present.number(int(m[2]))} نویسه"),
    (re.compile(r"remarks has (\d+) characters; at most (\d+)"),
     lambda m: f"توضیح {present.number(int(m[1]))} نویسه است؛ حداکثر {present.number(int(m[2]))} نویسه"),
    (re.compile(r"unknown project code '(.+)'"),
     lambda m: f"کد پروژهٔ {present.code_text(m[1])} ناشناخته است"),
    (re.compile(r"project (.+): its agency is outside your expert groups"),
     lambda m: f"پروژهٔ {present.code_text(m[1])} از دستگاهی بیرون از گروه‌های کارشناسی شماست"),
    # a cell's value that is no code, day or number (a NormalizationError's reason, after the value)
    (re.compile(r"(project_code|date|observed_progress) ('.*'|\".*\"): (.+)", re.S), lambda m: _reading(m)),
    # the file as a whole (a new user met these in English, without a subject)
    (re.compile(r"is not UTF-8 text \(first at line (\d+);.*", re.S),
     lambda m: f"پرونده به نویسه‌گذاری UTF-8 نیست (نخستین بار در سطر {present.number(int(m[1]))}؛ CSV سادهٔ Excel "
               "با Windows-1256 ذخیره می‌شود): در Excel با «Save As» گزینهٔ «CSV UTF-8 (Comma delimited)» را "
               "برگزینید، یا خود کارنامهٔ ‎.xlsx‎ را بفرستید"),
    (re.compile(r"is not an Excel workbook openpyxl can read.*"),
     lambda m: "پرونده کارنامهٔ Excel خواندنی (‎.xlsx‎) نیست"),
    (re.compile(r"is neither CSV text nor an Excel workbook \(\.xlsx\).*", re.S),
     lambda m: "پرونده نه متن CSV است، نه کارنامهٔ Excel (‎.xlsx‎): پرونده‌ای از این دو گونه بفرستید"),
    (re.compile(r"empty file: a header row is required"),
     lambda m: "پرونده خالی است: سطر نخست باید نام ستون‌ها باشد"),
    # more than a file may hold (reconcile/inspections.py MAX_LINES), or a workbook unpacking to more
    # than such a file takes (a compressed bomb): not read
    (re.compile(r"holds more than ([\d,]+) visits: split it into files of at most that many"),
     lambda m: f"پرونده بیش از {_grouped(m[1])} بازدید دارد: آن را به چند پرونده بخش کنید که هر یک دست‌بالا "
               f"{_grouped(m[1])} بازدید داشته باشد"),
    (re.compile(r"unpacks to ([\d,]+) MB, more than the (\d+) MB a workbook of ([\d,]+) visits takes: not read"),
     lambda m: f"کارنامه پس از گشودن {_grouped(m[1])} مگابایت می‌شود، بیش از {_grouped(m[2])} مگابایتی که "
               f"کارنامه‌ای با {_grouped(m[3])} بازدید می‌گیرد: خوانده نشد"),
    (re.compile(r"header (?:lacks|has unknown|repeats) column.*\(expected: (.+)\)"),
     lambda m: f"ستون‌های سطر نخست درست نیست؛ ستون‌ها باید این‌ها باشند: \u2066{m[1]}\u2069"),
    # another import stuck half-way (reconcile.inspections ImportsBusy): the console's file name is its own
    (re.compile(r".*: another import of field visits has been writing to the store for over (\d+) s;.*", re.S),
     lambda m: f"ورود دیگری از بازدیدهای میدانی بیش از {present.number(int(m[1]))} ثانیه است که در پایگاه "
               "می‌نویسد؛ چیزی ثبت نشد: پس از پایان آن دوباره بفرستید"),
]


def _grouped(text: str) -> str:
    """A count the import wrote with thousands' commas ('20,000'), in Persian digits ('۲۰٬۰۰۰')."""
    return present.number(int(text.replace(",", "")))


_CELLS = {"project_code": "کد پروژه", "date": "تاریخ بازدید", "observed_progress": "پیشرفت دیده‌شده"}
# what foundation.persian and foundation.jalali say of a value they cannot read
_READINGS = [
    (re.compile(r"empty"), lambda m: "خالی است"),
    (re.compile(r"not a code \(.*\)"), lambda m: "کد نیست (تنها رقم، حرف لاتین، «-» و «/»)"),
    (re.compile(r"not a Jalali date|no recognisable year group"),
     lambda m: "تاریخ شمسی (مانند ۱۴۰۵/۰۹/۱۲) یا میلادی (2026-12-03) نیست"),
    (re.compile(r"year (\d+) is not a Jalali year from 1300 to 1499"),
     lambda m: f"سال {present.digits(m[1])} میان ۱۳۰۰ و ۱۴۹۹ نیست"),
    (re.compile(r"no such Jalali day .*", re.S), lambda m: "چنین روزی در تقویم شمسی نیست"),
    (re.compile(r"no such Gregorian day .*", re.S), lambda m: "چنین روزی در تقویم میلادی نیست"),
    (re.compile(r"not a number"), lambda m: "عدد نیست"),
    (re.compile(r"two percent signs"), lambda m: "دو نشان درصد دارد"),
    (re.compile(r"unbalanced parenthesis"), lambda m: "پرانتزهایش جفت نیستند"),
    (re.compile(r"more than one minus"), lambda m: "بیش از یک نشان منفی دارد"),
    (re.compile(r"thousands separator not between groups of three digits"),
     lambda m: "جداکنندهٔ هزارگان میان گروه‌های سه‌رقمی نیست"),
    (re.compile(r"not a whole number"), lambda m: "عدد صحیح نیست (اعشار دارد)"),
    (re.compile(r"percent sign in a cell that is not a percentage"), lambda m: "نشان درصد دارد، ولی درصد نیست"),
    (re.compile(r"not a quarter name"), lambda m: "نام سه‌ماهه نیست"),
    (re.compile(r"no such time of day .*", re.S), lambda m: "چنین ساعتی در شبانه‌روز نیست"),
    (re.compile(r"not an ISO 8601 date-time"), lambda m: "تاریخ و ساعت به قالب ISO 8601 نیست"),
    (re.compile(r"ISO 8601 date-time without a UTC offset"),
     lambda m: "تاریخ و ساعت بی اختلاف با UTC (منطقهٔ زمانی) آمده است"),
]


def _reading(match: re.Match[str]) -> str:
    """«تاریخ بازدید ‹1405/13/40›: چنین روزی در تقویم شمسی نیست»; the value as typed, left to right.
    A reading the console does not know is said as «خوانده نشد» with the import's own words after it."""
    value = present.code_text(ast.literal_eval(match[2])) if match[2] not in ("''", '""') else ""
    subject = f"{_CELLS[match[1]]} {value}".strip()
    for pattern, words in _READINGS:
        said = pattern.fullmatch(match[3])
        if said:
            return f"{subject}: {words(said)}"
    return f"{subject} خوانده نشد (\u2066{match[3]}\u2069)"


def visit_reason(reason: str) -> tuple[str, bool]:
    """Why a visit was refused, in Persian when the console knows the reason's form: (text, True);
    otherwise the import's own sentence, (reason, False), for the page to show left to right."""
    for pattern, words in _VISIT_REASONS:
        match = pattern.fullmatch(reason)
        if match:
            return words(match), True
    return reason, False


# a row a sync run rejected (rejected_record.reason): the connectors' English reasons (connectors/saba,
# connectors/nezarat4, sync/sources) of a fixed form, and foundation's readings of a value (_READINGS,
# shared with the visits' reasons), said in Persian; another is shown as it is
_KINDS = {"int": "عدد صحیح", "number": "عدد", "string": "متن", "list": "فهرست", "object": "شیء JSON",
          "null": "تهی (null)", "boolean": "درست/نادرست (boolean)"}
_RANGES = {"expense chapter": "شمارهٔ فصل هزینه", "quarter": "شمارهٔ سه‌ماهه"}
_KNOWN = {"agreement status": "وضعیت موافقتنامه", "comptroller status": "وضعیت ذیحساب"}


def _quarter_name(text: str) -> str:
    return present.QUARTER_NAMES.get(int(text), f"سه‌ماهه {present.digits(text)}")


def _inner(reason: str) -> str:
    text, known = rejection_reason(reason)
    return text if known else f"\u2066{text}\u2069"


_REJECTIONS = [
    # connectors/saba/payloads.py: an item's value of the wrong JSON type, or a field it lacks
    (re.compile(r"expected (int|number|string|list|object)( or null)?, found (\w+)"),
     lambda m: f"باید {_KINDS[m[1]]}{' یا تهی' if m[2] else ''} باشد، {_KINDS.get(m[3], m[3])} است"),
    (re.compile(r"field missing"), lambda m: "این فیلد در پاسخ سامانه نیست"),
    # connectors/saba/canonical.py
    (re.compile(r"not a (expense chapter|quarter) \((\d+)\.\.(\d+)\)"),
     lambda m: f"{_RANGES[m[1]]} ({present.digits(m[2])} تا {present.digits(m[3])}) نیست"),
    (re.compile(r"not one of (.+)", re.S), lambda m: f"هیچ‌یک از این‌ها نیست: \u2066{m[1]}\u2069"),
    (re.compile(r"an agreement of another year in the listing of (\d+)"),
     lambda m: f"موافقتنامهٔ سالی دیگر در فهرست سال {present.digits(m[1])}"),
    (re.compile(r"the same chapter twice"), lambda m: "همان فصل دو بار آمده است"),
    (re.compile(r"the same operation code twice"), lambda m: "همان کد فعالیت دو بار آمده است"),
    (re.compile(r"(\d+) quarters, not 4"), lambda m: f"{present.number(int(m[1]))} سه‌ماهه دارد، نه ۴"),
    (re.compile(r"performance for an operation the agreement does not list"),
     lambda m: "عملکرد فعالیتی که در فعالیت‌های موافقتنامه نیست"),
    (re.compile(r"a second report for quarter (\d+)"), lambda m: f"گزارش دوم برای {_quarter_name(m[1])}"),
    # connectors/nezarat4/canonical.py and pages.py
    (re.compile(r"empty, but required"), lambda m: "خالی است، ولی باید پر باشد"),
    (re.compile(r"not a known (agreement status|comptroller status)"), lambda m: f"{_KNOWN[m[1]]} شناخته‌شده‌ای نیست"),
    (re.compile(r"a second (target|performance) row for quarter (\d+)"),
     lambda m: f"ردیف دوم {'برنامه' if m[1] == 'target' else 'عملکرد'} برای {_quarter_name(m[2])}"),
    (re.compile(r"row has (\d+) cells, the header (\d+)"),
     lambda m: f"ردیف {present.number(int(m[1]))} خانه دارد و سطر عنوان‌ها {present.number(int(m[2]))} ستون"),
    (re.compile(r"unreadable row"), lambda m: "ردیف خواندنی نیست"),
    (re.compile(r"identity unreadable, project not stored: (.+)", re.S),
     lambda m: f"مشخصات پروژه خوانده نشد و پروژه ثبت نشد: {_inner(m[1])}"),
    # sync/sources/saba.py
    (re.compile(r"404: the agreement is no longer there"), lambda m: "موافقتنامه دیگر در سامانه نیست (۴۰۴)"),
]


def rejection_reason(reason: str | None) -> tuple[str, bool]:
    """Why a sync run rejected a row, in Persian when the console knows the reason's form: (text,
    True); otherwise the connector's own sentence, (reason, False), for the page to show left to right."""
    if not reason:
        return present.NOTHING, True
    for pattern, words in (*_READINGS, *_REJECTIONS):
        match = pattern.fullmatch(reason)
        if match:
            return words(match), True
    return reason, False


# who did an act in the log of acts (console_action.username): a console user by their display name;
# the command line (web/users.py's default ``by``) by its Persian name; anyone else as logged
ACTORS = {"cli": "خط فرمان"}


def actor(username: str, action: str, people: dict[str, str]) -> tuple[str, bool]:
    """(the name to show, whether it is a person's or the CLI's name in Persian rather than a login
    name to show left to right). A failed sign-in keeps the name as typed: no one signed in."""
    if username in ACTORS:
        return ACTORS[username], True
    if action != "login_failed" and people.get(username):
        return people[username], True
    return username, False

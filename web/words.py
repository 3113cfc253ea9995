"""Persian words the console needs that foundation/present.py does not (yet) have: the states of
sync and reconciliation runs, a deviation's events, the store's tables and a visit's columns.
Kept here, in the one module the templates read them from; the lead may move them to present.py.
"""

from __future__ import annotations

SYNC_STATUS = {"running": "در حال اجرا", "success": "موفق", "incomplete": "ناقص", "failed": "ناموفق",
               "interrupted": "قطع‌شده"}
RUN_STATUS = {"running": "در حال اجرا", "success": "موفق", "failed": "ناموفق"}
MODES = {"full": "کامل", "incremental": "افزایشی"}
EVENTS = {"opened": "ایجاد", "escalated": "تشدید", "lowered": "کاهش شدت", "updated": "به‌روزرسانی ارقام",
          "resolved": "برطرف شد", "reopened": "بازگشایی", "acknowledged": "بررسی شد", "dismissed": "رد شد (نادرست)"}
TABLES = {"project_year": "پروژه در سال", "progress_report": "گزارش عملکرد", "project_credit": "اعتبار پروژه",
          "field_inspection": "بازدید میدانی", "expense_agreement": "موافقتنامه", "expense_credit": "اعتبار فصل",
          "operation": "فعالیت", "operation_performance": "عملکرد فعالیت"}
JOB_STATE = {"running": "در حال اجرا", "done": "پایان‌یافته", "failed": "ناموفق"}
AGREEMENT_STATUS = {"exchanged": "مبادله‌شده", "awaiting": "در انتظار مبادله", "amended": "اصلاحی",
                    "cancelled": "لغوشده"}


def word(table: dict[str, str]):
    """A template filter: the Persian word of a code, or the code itself when it has none."""
    return lambda code: table.get(code or "", code or "—")

"""Khuzestan's counties (شهرستان‌ها) and the other spellings their names appear in.

Two portals and many hands write county names differently: some differences are only letters and
spacing (the match key of foundation.persian folds those), others are real alternative spellings
that no normalisation can fold (هفتگل for هفتکل, سیدون for صیدون, plain ماهشهر for بندر ماهشهر).
This table, from domain.md §10, maps every known spelling to the county's canonical name, which is
what the store holds. An unknown name passes through unchanged: a new county (they do split) must
not be lost because it is not listed here.
"""

from __future__ import annotations

from foundation.persian import clean_text, text_key

# canonical name -> other spellings seen (domain.md §10 "notes" column, and the portals' examples)
COUNTIES: dict[str, tuple[str, ...]] = {
    "آبادان": (),
    "آغاجاری": (),
    "امیدیه": (),
    "اندیکا": (),
    "اندیمشک": (),
    "اهواز": (),
    "ایذه": (),
    "باغ‌ملک": ("باغملک", "باغ ملک"),
    "باوی": (),
    "بندر ماهشهر": ("بندرماهشهر", "ماهشهر"),
    "بهبهان": (),
    "حمیدیه": (),
    "خرمشهر": (),
    "دزفول": (),
    "دزپارت": ("دز پارت",),
    "دشت آزادگان": (),
    "رامشیر": (),
    "رامهرمز": (),
    "شادگان": (),
    "شوش": (),
    "شوشتر": (),
    "صیدون": ("سیدون",),
    "کارون": (),
    "کرخه": (),
    "گتوند": (),
    "لالی": (),
    "مسجدسلیمان": ("مسجد سلیمان",),
    "هفتکل": ("هفتگل",),
    "هندیجان": (),
    "هویزه": (),
}

_BY_KEY: dict[str, str] = {}
for _name, _aliases in COUNTIES.items():
    for _spelling in (_name, *_aliases):
        _BY_KEY[text_key(_spelling) or ""] = _name


def canonical_county(name: str | None) -> str | None:
    """The canonical name of a county spelt any known way; an unknown name in its clean form."""
    if name is None:
        return None
    return _BY_KEY.get(text_key(name) or "", clean_text(name))

"""How the portals write values: every text quirk of nezarat4.md §1, chosen per (record, field).

The inverse of a connector's canonicalisation. Each choice comes from a hash of (seed, record key,
field), never from a running RNG, so a page renders the same bytes every time it is served and the
quirks spread over many rows: digit systems (Persian, Arabic-Indic, ASCII, mixed within a page),
thousands separators (٬ ، , or none), decimal separators (٫ / .), percent signs with or without a
space, the four empty-cell markers, parenthesised negatives, unpadded dates and hours, Arabic ي ك ى,
ZWNJ replaced by a space or dropped, stray/doubled spaces and NBSP, kashida, presentation forms, and
the county spelling variants of domain.md §10.

Returned strings are HTML-safe: text is escaped here, and `&nbsp;` is emitted raw.
"""

from __future__ import annotations

import html
from datetime import date, datetime
from decimal import Decimal

from simulator import calendar as cal
from simulator.config import TEHRAN
from simulator.reference import ZWNJ, County
from simulator.wire import seeded_digest

PERSIAN = "۰۱۲۳۴۵۶۷۸۹"
ARABIC = "٠١٢٣٤٥٦٧٨٩"
_TO = {
    "fa": str.maketrans("0123456789" + ARABIC, PERSIAN * 2),
    "ar": str.maketrans("0123456789" + PERSIAN, ARABIC * 2),
    "en": str.maketrans(PERSIAN + ARABIC, "0123456789" * 2),
}
NBSP = "\u00a0"
KASHIDA = "\u0640"
# Isolated presentation forms (U+FB50–U+FDFF, U+FE70–U+FEFF); NFKC maps each back to its letter.
_PRESENTATION = {
    "ی": "\ufbfc", "ک": "\ufb8e", "ه": "\ufee9", "ب": "\ufe8f", "ا": "\ufe8d", "م": "\ufee1",
    "ن": "\ufee5", "ر": "\ufead", "د": "\ufea9", "و": "\ufeed", "ل": "\ufedd", "س": "\ufeb1",
}
# Letters that join on both sides: a kashida may follow them inside a word.
_DUAL_JOINING = set("بپتثجچحخسشصضطظعغفقکگلمنهیئ")
_LETTERS = set("آابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیئ")
EMPTY_MARKERS = ("", "&nbsp;", "-", "—")


def digits(text: str, system: str) -> str:
    return text.translate(_TO[system])


class Quirks:
    """Deterministic renderer of values with the portal's quirks; `seed` decides every choice."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def h(self, key: str, field: str) -> int:
        return int.from_bytes(seeded_digest(self.seed, key, field, size=8), "big")

    # ---------------------------------------------------------------- choices

    def row_digits(self, key: str) -> str:
        """The digit system of a row: mostly Persian, sometimes Arabic-Indic or ASCII."""
        roll = self.h(key, "digits") % 10
        return "fa" if roll < 6 else "ar" if roll < 8 else "en"

    def cell_digits(self, key: str, field: str, row: str) -> str:
        """Now and then one cell breaks from its row's digits (a page mixes systems)."""
        v = self.h(key, field + ":digits")
        if v % 9 == 0:
            return ("fa", "ar", "en")[(v >> 8) % 3]
        return row

    def empty(self, key: str, field: str) -> str:
        return EMPTY_MARKERS[self.h(key, field + ":empty") % 4]

    # ---------------------------------------------------------------- values

    def number(self, value: Decimal, key: str, field: str, system: str, *, allow_trailing_zero: bool = True) -> str:
        v = self.h(key, field)
        negative = value < 0
        text = format(abs(value), "f")
        whole, _, frac = text.partition(".")
        frac = frac.rstrip("0")
        if not frac and allow_trailing_zero and v % 5 == 0:
            frac = "0"  # '183738.0'
        thousands = ("٬", "،", ",", "")[(v >> 3) % 4]
        decimal_mark = ("٫", "٫", "/", ".")[(v >> 6) % 4]
        if thousands:
            groups = []
            while len(whole) > 3:
                groups.insert(0, whole[-3:])
                whole = whole[:-3]
            groups.insert(0, whole)
            whole = thousands.join(groups)
        out = whole + (decimal_mark + frac if frac else "")
        out = digits(out, self.cell_digits(key, field, system))
        if negative:
            out = f"({out})" if (v >> 9) % 2 else "-" + out
        return out

    def percent(self, value: Decimal, key: str, field: str, system: str) -> str:
        suffix = ("", "", "%", "٪", " ٪", " %")[(self.h(key, field + ":pct") >> 2) % 6]
        return self.number(value, key, field, system) + suffix

    def amount_or_empty(self, value: Decimal, key: str, field: str, system: str) -> str:
        """A credit amount: zero is sometimes an empty cell (the contract reads empty as 0)."""
        if value == 0 and self.h(key, field + ":zero") % 3:
            return self.empty(key, field)
        return self.number(value, key, field, system)

    def date(self, day: date, key: str, field: str, system: str) -> str:
        y, m, d = cal.to_jalali(day)
        v = self.h(key, field)
        text = f"{y}/{m:02d}/{d:02d}" if v % 3 else f"{y}/{m}/{d}"
        return digits(text, self.cell_digits(key, field, system))

    def datetime(self, moment: datetime, key: str, field: str, system: str) -> str:
        local = moment.astimezone(TEHRAN)
        v = self.h(key, field + ":time")
        clock = f"{local.hour:02d}:{local.minute:02d}" if v % 3 else f"{local.hour}:{local.minute:02d}"
        return self.date(local.date(), key, field, system) + " " + digits(clock, self.cell_digits(key, field, system))

    def text(self, value: str, key: str, field: str, system: str = "fa", *, escape: bool = True) -> str:
        """A text value with letter, ZWNJ, space, kashida, presentation-form and digit quirks."""
        out = self._text(value, key, field, system)
        return html.escape(out, quote=False) if escape else out

    def _text(self, value: str, key: str, field: str, system: str) -> str:
        v = self.h(key, field)
        out = value
        if v % 100 < 14:  # Arabic yeh / kaf (and alef maksura at the end of a word)
            out = out.replace("ک", "ك")
            if (v >> 8) % 3 == 0:
                out = " ".join(w[:-1] + "ى" if w.endswith("ی") else w for w in out.split(" "))
            out = out.replace("ی", "ي")
        zw = (v >> 12) % 20
        if ZWNJ in out and zw < 3:
            out = out.replace(ZWNJ, " " if zw < 2 else "")
        if (v >> 17) % 40 == 0:
            out = _kashida(out)
        if (v >> 22) % 40 == 0:
            out = _presentation(out)
        if system != "fa" and (v >> 27) % 2 == 0:
            out = digits(out, system)
        spaces = (v >> 30) % 24
        if spaces == 0:
            out = " " + out
        elif spaces == 1:
            out = out + " "
        elif spaces == 2 and " " in out.strip():
            out = out.replace(" ", "  ", 1)
        elif spaces == 3 and " " in out:
            out = out.replace(" ", NBSP, 1)
        elif spaces == 4:
            out = out + NBSP
        return out

    def county(self, county: County, key: str, field: str, system: str = "fa", *, escape: bool = True) -> str:
        """A county name, now and then in one of its other spellings (هفتگل for هفتکل, …)."""
        name = county.name
        if county.variants and self.h(key, field + ":variant") % 3 == 0:
            name = county.variants[(self.h(key, field + ":which") >> 4) % len(county.variants)]
        return self.text(name, key, field, system, escape=escape)


def _kashida(text: str) -> str:
    for i in range(len(text) - 1):
        if text[i] in _DUAL_JOINING and text[i + 1] in _LETTERS:
            return text[: i + 1] + KASHIDA + text[i + 1:]
    return text


def _presentation(text: str) -> str:
    for i, ch in enumerate(text):
        if ch in _PRESENTATION:
            return text[:i] + _PRESENTATION[ch] + text[i + 1:]
    return text

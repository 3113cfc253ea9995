"""Canonical forms of the Persian text, business codes and numbers the portals write.

Nezarat-4 and SABA mix three digit systems, Arabic and Persian letters, optional ZWNJ, five kinds
of separator and invisible bidi marks (nezarat4.md §1, domain.md §11). Connectors pass every raw
cell through this module once, at the boundary: `clean_text` gives the display form the store
keeps, `text_key` the key two spellings of one name share, `parse_code` / `parse_number` /
`parse_int` the typed values. What cannot be read raises a `NormalizationError` that names the
raw text, so the row is rejected with a reason rather than guessed at.

Errors (catch the base to reject a row, a subclass to tell the operator which field kind failed)::

    NormalizationError(ValueError)   .raw, .reason, .kind, .field
    ├── BadNumber                    kind "number"
    ├── BadCode                      kind "code"
    ├── BadText                      kind "text"
    └── BadDate (foundation.jalali) kind "date"
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

__all__ = [
    "BadCode",
    "BadNumber",
    "BadText",
    "NormalizationError",
    "canonical_letters",
    "clean_text",
    "is_empty_marker",
    "parse_code",
    "parse_count_label",
    "parse_int",
    "parse_number",
    "require_text",
    "sort_key",
    "text_key",
    "to_ascii_digits",
    "to_persian_digits",
]


class NormalizationError(ValueError):
    """A raw portal value that cannot be put into canonical form.

    ``raw`` is the text exactly as received (``None`` when there was none); the message shows its
    ``repr`` so invisible characters (ZWNJ, RLM, NBSP) are visible in a log line.
    """

    kind: str = "value"

    def __init__(
        self, raw: str | None, reason: str, kind: str | None = None, field: str | None = None
    ) -> None:
        self.raw = raw
        self.reason = reason
        self.kind = kind or type(self).kind
        self.field = field
        shown = repr(raw) if raw is None or len(raw) <= 200 else repr(raw[:200]) + "…"
        super().__init__(f"{field or self.kind}: {reason}: {shown}")

    # Without this, pickling (e.g. across worker processes) would lose raw, reason and field.
    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), (self.raw, self.reason, self.kind, self.field))


class BadNumber(NormalizationError):
    kind = "number"


class BadCode(NormalizationError):
    kind = "code"


class BadText(NormalizationError):
    kind = "text"


# --- digits ----------------------------------------------------------------------------------

_PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"  # U+06F0..U+06F9
_ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"  # U+0660..U+0669
_TO_ASCII = str.maketrans(_PERSIAN_DIGITS + _ARABIC_DIGITS, "0123456789" * 2)
_TO_PERSIAN = str.maketrans("0123456789" + _ARABIC_DIGITS, _PERSIAN_DIGITS * 2)


def to_ascii_digits(s: str) -> str:
    """Persian and Arabic-Indic digits to ASCII; every other character unchanged."""
    return s.translate(_TO_ASCII)


def to_persian_digits(s: str) -> str:
    """ASCII and Arabic-Indic digits to Persian; every other character unchanged."""
    return s.translate(_TO_PERSIAN)


# --- invisible characters and empty cells ----------------------------------------------------

_ZWNJ = "\u200c"
_EMPTY_MARKERS = frozenset({"", "-", "—", "–"})
_NBSP_ENTITY = re.compile(r"&nbsp;", re.IGNORECASE)
# Format characters (category Cf: bidi marks, ZWJ, BOM, ...) are never content in a number, code or
# date cell, so those parsers drop all of them, ZWNJ included.
_FORMAT_CHARS = re.compile(r"[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f"
                           r"\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")


def _drop_format_chars(s: str) -> str:
    return _FORMAT_CHARS.sub("", s)


def _plain(raw: str) -> str:
    """Raw cell text reduced for the parsers: no format characters, ASCII digits, one-space gaps."""
    return re.sub(r"\s+", " ", to_ascii_digits(_drop_format_chars(raw))).strip()


def is_empty_marker(raw: str | None) -> bool:
    """True for what the portals write in an empty cell: nothing, spaces/NBSP/&nbsp;, '-', '—', '–'."""
    if raw is None:
        return True
    return _drop_format_chars(_NBSP_ENTITY.sub(" ", raw)).strip() in _EMPTY_MARKERS


# --- text ------------------------------------------------------------------------------------

_PRESENTATION_FORMS = re.compile(r"[\ufb50-\ufdff\ufe70-\ufeff]")
_PERSIAN_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک"})
# Kashida and the invisible controls carry no meaning in a name; whitespace controls (tab, LF,
# CR, NEL, ...) are kept here so that the next step turns them into a space between words.
_DISPLAY_NOISE = re.compile(
    r"[\u0640\u00ad\u061c\u200b\u200d\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
    r"\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]"
)
_SPACE_OR_ZWNJ_RUN = re.compile(r"[ \u200c]+")


def _join_gap(match: re.Match[str]) -> str:
    # A gap with any real space in it is a word break; a ZWNJ beside a space joins nothing.
    return " " if " " in match.group() else _ZWNJ


def clean_text(raw: str | None) -> str | None:
    """Canonical display form of Persian text, the form the store holds; None for an empty cell.

    Presentation forms become base letters (NFKC on those characters only), Arabic ي ى ك become
    Persian ی ک, kashida and invisible controls go, any whitespace run becomes one space, ZWNJ is
    kept singly between letters, and digits become Persian. Idempotent.
    """
    if raw is None or is_empty_marker(raw):
        return None
    text = _PRESENTATION_FORMS.sub(lambda m: unicodedata.normalize("NFKC", m.group()), raw)
    text = text.translate(_PERSIAN_LETTERS)
    text = _DISPLAY_NOISE.sub("", text)
    text = re.sub(r"\s", " ", text)
    text = _SPACE_OR_ZWNJ_RUN.sub(_join_gap, text).strip(" " + _ZWNJ)
    text = to_persian_digits(text)
    return None if text in _EMPTY_MARKERS else text


# letters that draw nothing: Hangul fillers, the braille blank, kashida alone
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u0640")


def has_visible(text: str | None) -> bool:
    """Whether `text` has a character a reader sees: not only spaces, ZWNJ, bidi marks or other
    format and control characters, nor letters that draw nothing (a reason of ZWNJ alone was
    recorded as if given)."""
    return bool(text) and any(unicodedata.category(ch)[0] not in "CZ" and ch not in _BLANK_LETTERS for ch in text)


def require_text(raw: str | None, *, field: str = "text") -> str:
    """`clean_text` for a value the record cannot do without: an empty cell is BadText."""
    text = clean_text(raw)
    if text is None:
        raise BadText(raw, "empty", field=field)
    return text


_ARABIC_DIACRITICS = re.compile(r"[\u064b-\u065f\u0670]")
_KEY_FOLD = str.maketrans(
    {
        _ZWNJ: None,
        " ": None,
        "ۀ": "ه",  # U+06C0 heh with yeh above (ezafe)
        "ة": "ه",  # teh marbuta, used for ۀ by legacy fonts
        "ە": "ه",  # U+06D5, the base of ۀ's canonical decomposition
        "ھ": "ه",  # U+06BE heh doachashmee, typed by Arabic keyboards
        "أ": "ا",
        "إ": "ا",
        "ٱ": "ا",
        "ؤ": "و",
        "ئ": "ی",  # رئیس / رییس: the same hamza-seat fold as أ and ؤ
        **{persian: str(n) for n, persian in enumerate(_PERSIAN_DIGITS)},
    }
)


def text_key(raw: str | None) -> str | None:
    """Match key: strings that differ only in the ways nezarat4.md §1 lists share one key.

    The display form without ZWNJ and spaces, heh/alef/waw/yeh hamza variants folded (آ is kept),
    Arabic diacritics removed and ASCII digits. Idempotent. None for an empty cell.
    """
    display = clean_text(raw)
    if display is None:
        return None
    # NFC first so a decomposed alef + madda becomes آ and survives the diacritic removal; NFC
    # again at the end because removing marks can leave newly composable neighbours.
    key = unicodedata.normalize("NFC", display)
    key = _ARABIC_DIACRITICS.sub("", key).translate(_KEY_FOLD)
    key = unicodedata.normalize("NFC", key)
    return None if key in _EMPTY_MARKERS else key


def canonical_letters(raw: str) -> str:
    """Persian letters as the store keeps them, and nothing else changed: presentation forms become
    base letters, Arabic ي ى ك become Persian ی ک, kashida and invisible controls go. Digits, case,
    spaces and every other character stay as typed (for a name that must stay what it was, such as
    a console user's sign-in name: an ASCII name comes back unchanged). Idempotent."""
    text = _PRESENTATION_FORMS.sub(lambda m: unicodedata.normalize("NFKC", m.group()), raw or "")
    return _DISPLAY_NOISE.sub("", text.translate(_PERSIAN_LETTERS))


# --- sorting ---------------------------------------------------------------------------------
# Code-point order is not the alphabet's: پ چ ژ گ ک ی lie outside the Arabic block's order, so
# دزفول came before دزپارت and گتوند after هویزه. A letter's rank is its place in the Persian
# alphabet; the variants of one letter share it (آبادان sorts with the alef words, by its second
# letter, as the dictionaries sort it) and are told apart, in the order listed, only between texts
# otherwise equal.
_ALPHABET = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"
_VARIANTS = {"ا": "اآأإٱ", "ه": "هۀةەھ", "ی": "یيىئ", "ک": "کك", "و": "وؤ"}
# classes of character, lowest first: a word break, punctuation, digits, Persian letters, others
_GAP, _MARK, _DIGIT, _PERSIAN, _OTHER = (c << 21 for c in range(5))
_LETTER_RANK: dict[str, tuple[int, int]] = {
    form: (_PERSIAN + place, variant)
    for place, letter in enumerate(_ALPHABET)
    for variant, form in enumerate(_VARIANTS.get(letter, letter))
}
_SORT_IGNORED = re.compile(r"[\u064b-\u065f\u0670\u200c\u0640\u00ad\u061c\u200b\u200d\u200e\u200f"
                           r"\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


def _sort_rank(char: str) -> tuple[int, int]:
    rank = _LETTER_RANK.get(char)
    if rank is not None:
        return rank
    if char == " ":
        return (_GAP, 0)
    if "0" <= char <= "9":
        return (_DIGIT + int(char), 0)
    return ((_OTHER if char.isalnum() else _MARK) + ord(char), 0)


def sort_key(text: str | None) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """A key that orders Persian text as the alphabet does: ا آ ب پ ت ث ج چ ح خ د ذ ر ز ژ س ش ص
    ض ط ظ ع غ ف ق ک گ ل م ن و ه ی (``sorted(names, key=sort_key)``).

    Arabic ي ى ك ة and the hamza seats sort as the Persian letter they stand for; ZWNJ, kashida,
    diacritics and bidi marks are ignored (a ZWNJ joins, it does not part words); a run of
    whitespace is one word break, which sorts before everything else («باغ ملک» before «باغات»);
    then punctuation, then digits of any system, digit by digit, then the Persian letters, then
    other letters without case. Variant spellings of one text are ordered among themselves, then
    the text itself breaks a tie, so the order is total. None sorts as empty, first.
    """
    raw = text or ""
    plain = _PRESENTATION_FORMS.sub(lambda m: unicodedata.normalize("NFKC", m.group()), raw)
    plain = unicodedata.normalize("NFC", plain)  # ا followed by a madda above is آ
    plain = _SORT_IGNORED.sub("", to_ascii_digits(plain)).casefold()
    ranks = [_sort_rank(c) for c in re.sub(r"\s+", " ", plain).strip()]
    return tuple(r[0] for r in ranks), tuple(r[1] for r in ranks), raw


# --- codes -----------------------------------------------------------------------------------

_CODE_NOISE = re.compile(r"[\s\u0640]")
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d"})
_CODE = re.compile(r"[0-9A-Za-z/-]*[0-9A-Za-z][0-9A-Za-z/-]*")


def parse_code(raw: str | None, *, field: str = "code") -> str:
    """A business code (project, plan, agency, county, agreement, operation) as an opaque string.

    ASCII digits and upper-case Latin letters with '-' and '/' kept as written, so leading zeros
    survive ('032'); spaces, bidi marks, ZWNJ and kashida are dropped. Anything else is BadCode.
    """
    if raw is None or is_empty_marker(raw):
        raise BadCode(raw, "empty", field=field)
    code = to_ascii_digits(_CODE_NOISE.sub("", _drop_format_chars(raw))).translate(_DASHES)
    if not (code.isascii() and _CODE.fullmatch(code)):
        raise BadCode(raw, "not a code (digits, Latin letters, '-' and '/' only)", field=field)
    return code.upper()


# --- numbers ---------------------------------------------------------------------------------

_THOUSANDS = ",،٬‚"  # ASCII comma, U+060C, U+066C, U+201A
_DECIMAL = ".٫/"  # '/' between digits is a decimal point in a number cell, never a date
_PERCENT = "%٪"
_MINUS = "-−"
_NUMBER = re.compile(
    rf"""
    (?P<pct_before>[{_PERCENT}])?\ ?
    (?P<open>\()?\ ?
    (?P<minus_before>[{_MINUS}])?\ ?
    (?P<integer>[0-9]+(?:[{_THOUSANDS}][0-9]+)*)
    (?:[{_DECIMAL}](?P<fraction>[0-9]+))?
    \ ?(?P<minus_after>[{_MINUS}])?
    \ ?(?P<close>\))?
    \ ?(?P<pct_after>[{_PERCENT}])?
    """,
    re.VERBOSE,
)
_GROUPS = re.compile(rf"[{_THOUSANDS}]")


def parse_number(
    raw: str | None, *, percent: bool = False, field: str | None = None
) -> Decimal | None:
    """A number cell as nezarat4.md §1 writes it, exactly as written (no rounding); None if empty.

    Digits in any system; thousands separators ٬ ، , ‚ between groups of exactly three digits;
    one decimal separator ٫ . or /; negative as a leading or trailing minus or in parentheses.
    With ``percent`` a % or ٪ before or after the number is dropped; without it, it is BadNumber.
    """
    if raw is None or is_empty_marker(raw):
        return None
    m = _NUMBER.fullmatch(_plain(raw))
    if m is None:
        raise BadNumber(raw, "not a number", field=field)
    if m["pct_before"] and m["pct_after"]:
        raise BadNumber(raw, "two percent signs", field=field)
    if (m["pct_before"] or m["pct_after"]) and not percent:
        raise BadNumber(raw, "percent sign in a cell that is not a percentage", field=field)
    if bool(m["open"]) != bool(m["close"]):
        raise BadNumber(raw, "unbalanced parenthesis", field=field)
    if sum(map(bool, (m["open"], m["minus_before"], m["minus_after"]))) > 1:
        raise BadNumber(raw, "more than one minus", field=field)
    groups = _GROUPS.split(m["integer"])
    if len(groups) > 1 and not (
        1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
    ):
        raise BadNumber(raw, "thousands separator not between groups of three digits", field=field)
    negative = m["open"] or m["minus_before"] or m["minus_after"]
    fraction = f".{m['fraction']}" if m["fraction"] else ""
    return Decimal(f"{'-' if negative else ''}{''.join(groups)}{fraction}")


def parse_int(raw: str | None, *, field: str = "number") -> int | None:
    """An integral number cell (a year, a row number, a count); None if empty."""
    value = parse_number(raw, field=field)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise BadNumber(raw, "not a whole number", field=field)
    return int(value)


def parse_count_label(raw: str) -> int:
    """The count in a label such as 'تعداد رکوردها: ۱٬۲۳۴'; the text before ':' is ignored."""
    field = "record count"
    try:
        count = parse_int(raw.rpartition(":")[2] if raw is not None else None, field=field)
    except BadNumber as exc:
        raise BadNumber(raw, exc.reason, field=field) from exc
    if count is None:
        raise BadNumber(raw, "no number after the label", field=field)
    if count < 0:
        raise BadNumber(raw, "negative count", field=field)
    return count

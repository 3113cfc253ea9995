"""foundation.persian against nezarat4.md §1, domain.md §11 and cell values from the example pages."""

from __future__ import annotations

import pickle
import random
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.persian import (
    BadCode,
    BadNumber,
    BadText,
    NormalizationError,
    canonical_letters,
    clean_text,
    is_empty_marker,
    parse_code,
    parse_count_label,
    parse_int,
    parse_number,
    require_text,
    sort_key,
    text_key,
    to_ascii_digits,
    to_persian_digits,
)

ZWNJ = "\u200c"
PERSIAN = "۰۱۲۳۴۵۶۷۸۹"
ARABIC = "٠١٢٣٤٥٦٧٨٩"
ASCII = "0123456789"
FAST = settings(max_examples=200, deadline=None)


def _assert_names_raw(exc: NormalizationError, raw: str | None) -> None:
    assert exc.raw == raw
    assert repr(raw) in str(exc)


# --- digits ----------------------------------------------------------------------------------


def test_to_ascii_digits_maps_persian_and_arabic_indic_only():
    assert to_ascii_digits(PERSIAN + ARABIC + ASCII) == ASCII * 3
    assert to_ascii_digits("کد ۱۲-٣٤/x٫٬") == "کد 12-34/x٫٬"


def test_to_persian_digits_maps_ascii_and_arabic_indic_only():
    assert to_persian_digits(ASCII + ARABIC + PERSIAN) == PERSIAN * 3
    assert to_persian_digits("1405/7/9 ok") == "۱۴۰۵/۷/۹ ok"


# --- empty cells -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "\xa0", "&nbsp;", " &NBSP; \xa0", "-", "—", "–", " - ", "\u200f-\u200e", ZWNJ],
)
def test_is_empty_marker_true_for_what_portals_write_in_empty_cells(raw):
    assert is_empty_marker(raw)


@pytest.mark.parametrize("raw", ["0", "۰", "--", "x", "-5", "&amp;"])
def test_is_empty_marker_false_for_values(raw):
    assert not is_empty_marker(raw)


# --- clean_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "display"),
    [
        # detail page: Arabic kaf and a doubled space
        ("احداث مدرسه ۱۲ کلاسه شهرك  نفت", "احداث مدرسه ۱۲ کلاسه شهرک نفت"),
        # list page: Arabic yeh and kaf around a ZWNJ compound
        ("دانشگاه علوم پزشكي جندي‌شاپور اهواز", "دانشگاه علوم پزشکی جندی‌شاپور اهواز"),
        ("بهسازی راه روستایی اهواز ", "بهسازی راه روستایی اهواز"),
        # SABA: Arabic comma, then ZWNJ beside a space
        (
            "اداره كل ميراث فرهنگي،\u200c گردشگري و صنايع دستي",
            "اداره کل میراث فرهنگی، گردشگری و صنایع دستی",
        ),
        ("اداره کل بهزيستي استان خوزستان", "اداره کل بهزیستی استان خوزستان"),
        # pe.mporg.ir: alef maksura presentation form U+FEEF
        ("سال كار\ufeef", "سال کاری"),
        ("\ufeb3\ufe8e\ufedf", "سال"),
        ("\ufefb", "لا"),  # lam-alef ligature becomes two letters
        ("مصطفى", "مصطفی"),
        ("تكميل بيمارستان 96 تختخوابي", "تکمیل بیمارستان ۹۶ تختخوابی"),
        ("سال ١٤٠٥", "سال ۱۴۰۵"),
        ("تهـــران", "تهران"),
        ("\u202bاهواز\u202c\u200e", "اهواز"),
        ("\u2067دزفول\u2069\u200f", "دزفول"),
        ("\ufeffآبادان", "آبادان"),
        ("راه\u200dآهن", "راهآهن"),
        ("راه\xa0آهن", "راه آهن"),
        ("راه\u2003\u2009 آهن", "راه آهن"),
        ("احداث\tپل\r\nاهواز", "احداث پل اهواز"),
        ("اهواز\x00\x07\x9f", "اهواز"),
        ("راه\u200c\u200cآهن", "راه\u200cآهن"),
        ("\u200cراه\u200cآهن\u200c", "راه\u200cآهن"),
        ("راه \u200cآهن", "راه آهن"),
        ("راه\u200c آهن", "راه آهن"),
        ("راه\u200c\u200e\u200c آهن", "راه آهن"),
        ("  دستگاه‌های   اجرایی  ", "دستگاه‌های اجرایی"),
    ],
)
def test_clean_text_display_form(raw, display):
    assert clean_text(raw) == display


@pytest.mark.parametrize(
    "raw", [None, "", "&nbsp;", "\xa0", "-", "—", "–", ZWNJ, "\u0640", "\u200f\u200e", "\u0640-\u0640"]
)
def test_clean_text_empty_cell_is_none(raw):
    assert clean_text(raw) is None


def test_require_text_returns_display_form():
    assert require_text(" شهرك ", field="county") == "شهرک"


@pytest.mark.parametrize("raw", [None, "", "&nbsp;", "-"])
def test_require_text_empty_is_bad_text_naming_field_and_raw(raw):
    with pytest.raises(BadText) as info:
        require_text(raw, field="project title")
    _assert_names_raw(info.value, raw)
    assert "project title" in str(info.value)


# --- text_key --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variants",
    [
        ["راه‌آهن", "راه آهن", "راهآهن", " راه  آهن ", "راه\xa0آهن", "راه\u200c\u200cآهن"],
        ["دستگاه‌های", "دستگاه های", "دستگاههای", "دستگاه\u200c های"],
        ["اندیمشک", "انديمشك", "اندیمشك", "اندﯾﻤﺸﮏ"],
        ["سال کاری", "سال كارﻯ", "سال كاري", "سال\u200cکاری"],
        ["خانه", "خانۀ", "خانهٔ", "خانة"],
        ["اسلامی", "إسلامی", "أسلامی", "ٱسلامی"],
        ["موسسه", "مؤسسه", "مو\u0654سسه"],
        ["رییس", "رئیس", "ري\u0654يس"],
        ["مدرسه", "مَدْرِسه", "مُدَرِّسه", "مدرسـه", "مـدرســه"],
        ["احداث مدرسه ۱۲ کلاسه", "احداث مدرسه 12 کلاسه", "احداث مدرسه ١٢ كلاسه"],
        ["دزپارت", "دز پارت"],
        ["بندرماهشهر", "بندر ماهشهر", "\u200fبندر ماهشهر\u200f"],
        ["سه‌ماهه اول", "سه ماهه اول", "سهماهه اول", "ﺳﻪ ﻣﺎﻫﻪ ﺍﻭﻝ"],
    ],
)
def test_text_key_equal_for_spelling_variants(variants):
    keys = {text_key(v) for v in variants}
    assert len(keys) == 1, keys


def test_text_key_form():
    assert text_key("احداث مدرسه ۱۲ کلاسه") == "احداثمدرسه12کلاسه"
    assert text_key("آبادان") == "آبادان"  # آ is a letter of its own, not a hamza variant
    assert text_key("ا\u0653بادان") == "آبادان"  # decomposed madda composes to آ and is kept


@pytest.mark.parametrize(
    ("a", "b"), [("آبادان", "ابادان"), ("اهواز", "دزفول"), ("سه‌ماهه اول", "سه‌ماهه دوم")]
)
def test_text_key_keeps_different_names_apart(a, b):
    assert text_key(a) != text_key(b)


@pytest.mark.parametrize("raw", [None, "", "&nbsp;", "-", ZWNJ, "\u064e", "-\u064e"])
def test_text_key_empty_is_none(raw):
    assert text_key(raw) is None


# --- parse_code ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("۱۳۰۵۰۱۲۰۰۷-۰۰۳", "1305012007-003"),  # detail lblProjectCode
        ("۱۳۰۵۰۱۲۰۰۷", "1305012007"),
        ("۱۴۰۵-۳۰۵-۰۰۴۱۲", "1405-305-00412"),
        ("۳۰۵", "305"),
        ("١٣٠١٧٣٩١٧١-٠٠٨", "1301739171-008"),  # list page, Arabic-Indic
        ("1301358476-007", "1301358476-007"),
        ("۱۴۰۵-۰۳۲-۱۱۰۰۲", "1405-032-11002"),  # SABA agreementNo
        ("1405-118-10401", "1405-118-10401"),
        ("032", "032"),  # leading zero kept
        ("01", "01"),
        ("11002-03", "11002-03"),
        (" ۳۰۵ ", "305"),
        ("\u200f۳۰۵\u200e", "305"),
        ("۱۲\u200c۳۴", "1234"),
        ("۱۳۰۵ ۰۱۲ ۰۰۷", "1305012007"),
        ("12\u201334", "12-34"),
        ("12\u221234", "12-34"),
        ("۱۴۰۵/۳۲", "1405/32"),
        ("ab-12", "AB-12"),
    ],
)
def test_parse_code(raw, code):
    assert parse_code(raw) == code


@pytest.mark.parametrize("raw", [None, "", "\xa0", "&nbsp;", "-", "—"])
def test_parse_code_empty_is_bad_code(raw):
    with pytest.raises(BadCode) as info:
        parse_code(raw, field="agency code")
    _assert_names_raw(info.value, raw)
    assert str(info.value).startswith("agency code: ")


@pytest.mark.parametrize("raw", ["12.5", "کد۱۲", "12#3", "--", "/", "é1", "１２", "12_3", "۱۲٫۵"])
def test_parse_code_other_characters_are_bad_code(raw):
    with pytest.raises(BadCode) as info:
        parse_code(raw)
    _assert_names_raw(info.value, raw)
    assert info.value.kind == "code"


# --- parse_number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # nezarat4.md §1
        ("۱۴۰۵", "1405"),
        ("١٤٠٥", "1405"),
        ("1405", "1405"),
        ("۱٬۲۵۰٬۰۰۰", "1250000"),
        ("۱،۲۵۰،۰۰۰", "1250000"),
        ("1,250,000", "1250000"),
        ("1‚250‚000", "1250000"),
        ("۴۵٫۵", "45.5"),
        ("45.5", "45.5"),
        ("۹۹/۹۵", "99.95"),
        ("22/700", "22.700"),
        # detail page
        ("۴۸۵٬۰۰۰", "485000"),
        ("۳۱٫۵", "31.5"),
        ("۹۰٬۰۰۰", "90000"),
        ("۳۱٬۲۵۰٫۵", "31250.5"),
        ("۳۹٬۲۵۰٫۵", "39250.5"),
        ("39,250.5", "39250.5"),
        ("38", "38"),
        ("۳۴٫۸", "34.8"),
        ("۱۲٬۴۰۰", "12400"),
        # list pages, one of each shape
        ("۱۸۳٬۷۳۸٫۰", "183738.0"),
        ("۲۳۸٬۷۳۳", "238733"),
        ("152,953", "152953"),
        ("57٬031", "57031"),
        ("١٩٩,٢٢٣٫٠", "199223.0"),
        ("۲۳۳,۶۹۹", "233699"),
        ("۱۱۳۸۷۵", "113875"),
        ("١٣١٬٥٤١٫٠", "131541.0"),
        ("٢٠٧٢٧٧٫٠", "207277.0"),
        ("۲۳۳,۰۹۹٫۰", "233099.0"),
        ("125٬425٫0", "125425.0"),
        ("200,600٫0", "200600.0"),
        ("174,406٫0", "174406.0"),
        ("۴٬۶۳۴٫۰", "4634.0"),
        ("۶۰۹٫۰", "609.0"),
        ("٠٫٢", "0.2"),
        ("11059", "11059"),
        # negatives
        ("-120", "-120"),
        ("−120", "-120"),
        ("۱۲۰-", "-120"),
        ("(۱۲۰)", "-120"),
        ("( ۱۲۰ )", "-120"),
        ("(1,250.5)", "-1250.5"),
        ("-۳۱٬۲۵۰٫۵", "-31250.5"),
        ("- 120", "-120"),
        # stray spaces and marks around
        (" ۱۲۰ ", "120"),
        ("\xa0۱۲۰\xa0", "120"),
        ("\u200f۱۲۰\u200f", "120"),
        ("\u202b۱۲٫۵\u202c", "12.5"),
        ("007", "7"),
    ],
)
def test_parse_number(raw, value):
    parsed = parse_number(raw)
    assert parsed == Decimal(value)
    assert parsed.as_tuple() == Decimal(value).as_tuple()  # exactly as written, trailing zeros too


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("۴۵٫۵ ٪", "45.5"),
        ("45.5%", "45.5"),
        ("۴۵٫۵", "45.5"),
        ("۸۵ ٪", "85"),
        ("۳۴٫۲%", "34.2"),
        ("۶۰ ٪", "60"),
        ("٦٨٫٠ ٪", "68.0"),
        ("٨٢٫٦%", "82.6"),
        ("58٫8%", "58.8"),
        ("90٫0 ٪", "90.0"),
        ("۷۳%", "73"),
        ("١٢%", "12"),
        ("٪۸۵", "85"),
        ("% 45.5", "45.5"),
        ("-۵٪", "-5"),
        ("(۵) ٪", "-5"),
        ("۸۵\xa0٪", "85"),
    ],
)
def test_parse_number_percent(raw, value):
    assert parse_number(raw, percent=True) == Decimal(value)


@pytest.mark.parametrize("raw", [None, "", "&nbsp;", "\xa0", " ", "-", "—", "–"])
def test_parse_number_empty_cell_is_none(raw):
    assert parse_number(raw) is None
    assert parse_number(raw, percent=True) is None


@pytest.mark.parametrize(
    "raw",
    [
        "1,5",  # a group of one digit after a separator
        "12,34",
        "1234,567",  # first group of four
        "1,2345",
        ",123",
        "۲۳۶‚۶۴",  # bidi-reversed groups (domain.md §11): refused, not guessed
        "1.2.3",
        "1/2/3",
        "۱۴۰۵/۰۸/۰۳",  # a number cell is never a date
        "1405/8/3 9:05",
        ".5",
        "5.",
        "1.234,5",
        "abc",
        "۱۲ ۳۴",
        "--5",
        "(-5)",
        "(5",
        "5)",
        "-5-",
        "1e5",
        "+5",
        "٪",
        "۱۲ ریال",
        "0x10",
    ],
)
def test_parse_number_bad_number_names_raw(raw):
    with pytest.raises(BadNumber) as info:
        parse_number(raw)
    _assert_names_raw(info.value, raw)
    assert info.value.kind == "number"


@pytest.mark.parametrize("raw", ["۸۵ ٪", "45.5%", "٪۸۵"])
def test_parse_number_percent_sign_refused_where_not_a_percentage(raw):
    with pytest.raises(BadNumber, match="percent") as info:
        parse_number(raw)
    _assert_names_raw(info.value, raw)


@pytest.mark.parametrize("raw", ["%5%", "٪۸۵٪", "5%%", "۵٪ ریال"])
def test_parse_number_percent_bad_number(raw):
    with pytest.raises(BadNumber) as info:
        parse_number(raw, percent=True)
    _assert_names_raw(info.value, raw)


def test_parse_number_field_in_message():
    with pytest.raises(BadNumber, match="^approved credit: "):
        parse_number("1,5", field="approved credit")


# --- parse_int and parse_count_label ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("۱۴۰۵", 1405),
        ("١٤٠٥", 1405),
        ("1405", 1405),
        ("۱٬۲۳۴", 1234),
        ("٥٥٧", 557),
        ("۵۵۱", 551),
        ("1405.0", 1405),
        ("(3)", -3),
    ],
)
def test_parse_int(raw, value):
    assert parse_int(raw) == value
    assert type(parse_int(raw)) is int


@pytest.mark.parametrize("raw", [None, "", "&nbsp;", "-"])
def test_parse_int_empty_is_none(raw):
    assert parse_int(raw) is None


@pytest.mark.parametrize("raw", ["۱۲٫۵", "12.5", "۸۵٪", "1,5", "سال"])
def test_parse_int_bad_number_names_field_and_raw(raw):
    with pytest.raises(BadNumber) as info:
        parse_int(raw, field="start year")
    _assert_names_raw(info.value, raw)
    assert str(info.value).startswith("start year: ")


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        ("تعداد رکوردها: ۱٬۲۳۴", 1234),  # list page lblCount
        ("تعداد رکوردها: ۰", 0),  # empty list page
        ("تعداد رکوردها:1234", 1234),
        ("\u200fتعداد رکوردها: ١٢٣٤ ", 1234),
        ("۵۰", 50),
    ],
)
def test_parse_count_label(raw, count):
    assert parse_count_label(raw) == count


@pytest.mark.parametrize(
    "raw",
    [
        "تعداد رکوردها: ",
        "تعداد رکوردها:",
        "تعداد رکوردها",
        "تعداد رکوردها: -",
        "تعداد رکوردها: ۱۲٫۵",
        "تعداد رکوردها: -۵",
        "تعداد رکوردها: ۱,۲۳",
    ],
)
def test_parse_count_label_without_a_count_is_bad_number(raw):
    with pytest.raises(BadNumber) as info:
        parse_count_label(raw)
    _assert_names_raw(info.value, raw)


# --- errors ----------------------------------------------------------------------------------


def test_errors_form_a_hierarchy_under_value_error():
    for cls in (BadNumber, BadCode, BadText):
        assert issubclass(cls, NormalizationError)
    assert issubclass(NormalizationError, ValueError)


def test_error_kind_and_custom_kind():
    assert BadNumber("x", "r").kind == "number"
    assert BadText("x", "r").kind == "text"
    assert NormalizationError("x", "r", kind="quarter").kind == "quarter"


def test_error_message_shows_invisible_characters_and_truncates_long_raw():
    assert "\\u200f" in str(BadNumber("۱\u200f", "r"))
    long_raw = "۱" * 5000
    exc = BadNumber(long_raw, "r")
    assert exc.raw == long_raw
    assert len(str(exc)) < 400


def test_error_survives_pickling():
    exc = pickle.loads(pickle.dumps(BadCode("۱#", "bad", field="plan code")))
    assert (type(exc), exc.raw, exc.reason) == (BadCode, "۱#", "bad")
    assert (exc.kind, exc.field) == ("code", "plan code")
    assert str(exc) == "plan code: bad: '۱#'"


# --- properties ------------------------------------------------------------------------------

_DIGIT_SYSTEMS = {"ascii": ASCII, "persian": PERSIAN, "arabic": ARABIC}


@st.composite
def rendered_numbers(draw):
    """A Decimal and one way a portal could write it."""
    places = draw(st.integers(0, 4))
    value = Decimal(draw(st.integers(-(10**13), 10**13))).scaleb(-places)
    integer, _, fraction = format(abs(value), "f").partition(".")
    sep = draw(st.sampled_from(["", "٬", "،", ",", "‚"]))
    if sep:
        head = len(integer) % 3 or 3
        integer = sep.join([integer[:head]] + [integer[i : i + 3] for i in range(head, len(integer), 3)])
    text = integer + (draw(st.sampled_from(["٫", ".", "/"])) + fraction if fraction else "")
    text = text.translate(str.maketrans(ASCII, draw(st.sampled_from(list(_DIGIT_SYSTEMS.values())))))
    if value < 0:
        text = draw(st.sampled_from(["-{}", "−{}", "{}-", "({})", "- {}", "( {} )"])).format(text)
    percent = draw(st.booleans())
    if percent:
        text = draw(st.sampled_from(["{}", "{}%", "{}٪", "{} ٪", "{}\xa0%", "٪{}", "% {}"])).format(text)
    pad = st.sampled_from(["", " ", "\xa0", "\u200f", "\u200e", "\u202b", ZWNJ, " \u200f "])
    return draw(pad) + text + draw(pad), percent, value


@FAST
@given(rendered_numbers())
def test_parse_number_round_trips_every_rendering(case):
    text, percent, value = case
    parsed = parse_number(text, percent=percent)
    assert parsed == value
    assert parsed.as_tuple() == value.as_tuple()


_PERSIAN_LETTERS = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیآ"
_NOISE = (
    "ي ى ك ة ۀ أ إ ٱ ؤ ئ ه ە ھ \u0654 \u0653 \u0655 \u064b \u064e \u0651 \u0670 \u0640 "
    "\u200c \u200d \u200e \u200f \u202a \u202b \u202e \u2066 \u2069 \ufeff \u200b \u061c "
    "\xa0 \u2003 \t \n \x00 \x85 \x9f - — – %s %s %s a B \u0301 \u0300 ﻻ ﯾ ﻜ ﻰ ﺔ ﹰ ﱞ ﷲ ﺁ"
    % (PERSIAN, ARABIC, ASCII)
).split(" ")
_TEXT_ALPHABET = list(_PERSIAN_LETTERS) + [c for chunk in _NOISE for c in chunk] + [" "]
persian_like_text = st.text(alphabet=st.sampled_from(_TEXT_ALPHABET), max_size=40)


@FAST
@given(st.one_of(persian_like_text, st.text(max_size=30)))
def test_clean_text_idempotent(raw):
    once = clean_text(raw)
    assert clean_text(once) == once


@FAST
@given(st.one_of(persian_like_text, st.text(max_size=30)))
def test_text_key_idempotent(raw):
    once = text_key(raw)
    assert text_key(once) == once


def _presentation_forms() -> dict[str, list[str]]:
    forms: dict[str, list[str]] = {}
    for cp in [*range(0xFB50, 0xFE00), *range(0xFE70, 0xFF00)]:
        folded = unicodedata.normalize("NFKC", chr(cp))
        if len(folded) == 1 and folded != chr(cp):
            forms.setdefault(folded, []).append(chr(cp))
    return forms


_FORMS = _presentation_forms()
_ARABIC_LETTER = {"ی": ["ي", "ى"], "ک": ["ك"]}
words = st.lists(st.text(alphabet=_PERSIAN_LETTERS, min_size=1, max_size=6), min_size=1, max_size=4)


@st.composite
def spelling_variant(draw, canonical_words):
    """The words as a portal might write them: any gap, letter variant, kashida, presentation form."""
    out = [draw(st.sampled_from(["", " ", "\xa0", "\u200f", "  "]))]
    for i, word in enumerate(canonical_words):
        if i:
            out.append(draw(st.sampled_from(["", " ", ZWNJ, "  ", " " + ZWNJ, "\xa0", ZWNJ * 2])))
        for letter in word:
            choices = [letter] + _ARABIC_LETTER.get(letter, [])
            written = draw(st.sampled_from(choices))
            if draw(st.booleans()) and written in _FORMS:
                written = draw(st.sampled_from(_FORMS[written]))
            out.append(written + draw(st.sampled_from(["", "", "\u0640", "\u064e"])))
    out.append(draw(st.sampled_from(["", " ", "\u200e", ZWNJ])))
    return "".join(out)


@FAST
@given(st.data())
def test_text_key_equal_for_zwnj_space_letter_kashida_and_presentation_variants(data):
    canonical_words = data.draw(words)
    canonical = " ".join(canonical_words)
    variant = data.draw(spelling_variant(canonical_words))
    assert text_key(variant) == text_key(canonical) == "".join(canonical_words)


# --- canonical_letters ---------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "canonical"), [
    ("علي", "علی"),  # Arabic yeh, as an Arabic keyboard layout types it
    ("كاظم", "کاظم"),  # Arabic kaf
    ("موسى", "موسی"),  # alef maksura
    ("\ufee3\ufeee\ufeb3\ufef0", "موسی"),  # presentation forms, as old fonts' text pastes
])
def test_canonical_letters_writes_persian_letters_as_the_store_keeps_them(raw, canonical):
    assert canonical_letters(raw) == canonical


@pytest.mark.parametrize("raw", ["ali", "Ali.Rezaei-2@x", "user_10", "۱۴۰۵", "علی رضایی", "a\u200cb"])
def test_canonical_letters_leaves_digits_case_spaces_and_ascii_alone(raw):
    assert canonical_letters(raw) == raw


def test_canonical_letters_drops_kashida_and_bidi_marks():
    assert canonical_letters("\u200fعلـــي\u200e") == "علی"


# --- sort_key ------------------------------------------------------------------------------

ALPHABET = "ا آ ب پ ت ث ج چ ح خ د ذ ر ز ژ س ش ص ض ط ظ ع غ ف ق ک گ ل م ن و ه ی".split()


def test_sort_key_orders_the_letters_as_the_persian_alphabet():
    for shuffled in (ALPHABET[::-1], random.Random(5).sample(ALPHABET, len(ALPHABET))):
        assert sorted(shuffled, key=sort_key) == ALPHABET


@pytest.mark.parametrize(("first", "second"), [
    ("دزپارت", "دزفول"),  # پ after ب, before ت: code-point order put دزفول first
    ("کارون", "گتوند"),  # ک گ before ل: code point put both after هویزه
    ("کرخه", "هویزه"),
    ("گتوند", "هویزه"),
    ("چغامیش", "حمیدیه"),  # چ after ج, before ح
    ("رامهرمز", "ژاندارمری"),  # ژ after ز
    ("آبادان", "اهواز"),  # آ is an alef: the words sort by their next letters, as dictionaries do
    ("باغ ملک", "باغات"),  # a word break sorts before any letter
    ("شوش", "شوشتر"),  # a prefix first
    ("1404", "آبادان"),  # digits before letters
    ("۱۴۰۴", "1405"),  # digits of any system by the digit
    ("اهواز", "Ahvaz"),  # Latin letters after the Persian ones
])
def test_sort_key_puts_names_in_the_alphabets_order(first, second):
    assert sort_key(first) < sort_key(second)
    assert sorted([second, first], key=sort_key) == [first, second]


@pytest.mark.parametrize(("persian", "arabic"), [
    ("علی", "علي"), ("کرخه", "كرخه"), ("موسی", "موسى"), ("مدرسه", "مدرسة"),
])
def test_sort_key_sorts_arabic_letters_as_the_persian_ones(persian, arabic):
    assert sort_key(persian)[0] == sort_key(arabic)[0]  # the same place in the alphabet's order
    names = ["علیرضا", "عباس", "کاظم", "مدرسان", "موسوی", "کوت"]
    assert sorted([*names, arabic], key=sort_key).index(arabic) == sorted([*names, persian], key=sort_key).index(persian)


def test_sort_key_ignores_zwnj_kashida_diacritics_and_bidi_marks():
    assert sort_key("می\u200cرود")[0] == sort_key("میرود")[0]
    assert sort_key("مسجد\u200cسلیمان")[0] == sort_key("مسجدسلیمان")[0]
    assert sort_key("اهـــواز")[0] == sort_key("\u200fاهواز\u200e")[0] == sort_key("اهواز")[0]
    assert sort_key("مُدرِسه")[0] == sort_key("مدرسه")[0]
    assert sort_key("باغ  \t ملک")[0] == sort_key(" باغ ملک ")[0]  # a run of whitespace is one word break


def test_sort_key_is_a_total_order_telling_variants_apart():
    variants = ["آب", "اب", "علي", "علی", "a", "A", ""]
    once, again = sorted(variants, key=sort_key), sorted(reversed(variants), key=sort_key)
    assert once == again == ["", "اب", "آب", "علی", "علي", "A", "a"]
    assert sort_key(None) == sort_key("")  # nothing, first

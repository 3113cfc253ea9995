"""A negative figure keeps its minus left of its digits wherever a person reads it in right-to-left
text: a sentence (stored in the deviation, shown by the console, the e-mails and the report) and a
figure beside it. A trial measured «…تنها -۱۲٫۵٪ پیشرفت…» in Chromium with the minus right of the
digits in the e-mail, the console and the report's sentences, while the report's figures line
(a left-to-right ``<bdi>``) had it left: one figure, two ways. Drawn in Debian's Chromium (tests/browser.py)."""

from __future__ import annotations

import html
from decimal import Decimal

from foundation import present
from reconcile import wording
from tests.browser import browser_page, screenshot_path

LRI, PDI = "\u2066", "\u2069"

# where each minus sits against the digit after it, in every text node of the page
MINUS_SIDES = """() => {
    const found = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const m of node.data.matchAll(/-(?=[۰-۹])/g)) {
            const box = (start) => {
                const range = document.createRange();
                range.setStart(node, start);
                range.setEnd(node, start + 1);
                return range.getBoundingClientRect();
            };
            found.push({text: node.parentElement.textContent, minus: box(m.index).left,
                        digit: box(m.index + 1).left});
        }
    }
    return found;
}"""


def test_a_negative_figure_is_isolated_and_a_positive_one_is_not():
    assert present.number(Decimal("-12.5")) == f"{LRI}-۱۲٫۵{PDI}"
    assert present.percent(Decimal("-12.5")) == f"{LRI}-۱۲٫۵٪{PDI}"  # the sign inside, beside its digits
    assert present.amount(Decimal(-1250), unit=True) == f"{LRI}-۱٬۲۵۰{PDI} میلیون ریال"
    assert wording.percent(Decimal("-12.5")) == f"{LRI}-۱۲٫۵٪{PDI}"
    assert present.number(Decimal("-0.001"), places=2) == "۰٫۰۰"  # no minus shown, nothing isolated
    assert (present.number(Decimal("12.5")), present.percent(Decimal(45)), wording.percent(None)) == (
        "۱۲٫۵", "۴۵٪", "؟٪")
    assert present.percent(Decimal(1250)) == "۱٬۲۵۰٪"  # grouped as every figure (a trial: «۱۲۵۰٪»)


def test_in_a_right_to_left_line_the_minus_is_left_of_the_digits():
    sentences = [
        f"پروژه تا پایان سه‌ماههٔ دوم {wording.amount(Decimal(600), Decimal(100))} جذب کرده اما تنها "
        f"{wording.percent(Decimal('-12.5'))} پیشرفت فیزیکی داشته است",
        f"فاصله {present.percent(Decimal('-1.9'))} و مبلغ {present.amount(Decimal('-3.25'), unit=True)}",
        f"پیشرفت {present.number(Decimal('-7'))} واحد درصد",
    ]
    body = "".join(f"<p>{html.escape(s)}</p>" for s in sentences)
    with browser_page(width=900) as (page, errors):
        page.set_content(f'<!doctype html><html lang="fa" dir="rtl"><body style="font-size:20px">{body}</body></html>')
        found = page.evaluate(MINUS_SIDES)
        page.screenshot(path=screenshot_path("negative-figures-in-sentences"))
    assert len(found) == 4 and errors == []
    wrong = [f for f in found if f["minus"] > f["digit"]]
    assert wrong == [], wrong

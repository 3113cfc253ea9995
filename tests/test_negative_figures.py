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
    # the sign after the isolate: on the side a positive figure's is, in either direction (below)
    assert present.percent(Decimal("-12.5")) == f"{LRI}-۱۲٫۵{PDI}٪"
    assert present.amount(Decimal(-1250), unit=True) == f"{LRI}-۱٬۲۵۰{PDI} میلیون ریال"
    assert wording.percent(Decimal("-12.5")) == f"{LRI}-۱۲٫۵{PDI}٪"
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


SIDES = """(id) => { const node = document.getElementById(id).firstChild; const out = [];
    for (let i = 0; i < node.data.length; i++) { const r = document.createRange(); r.setStart(node, i);
        r.setEnd(node, i + 1); const b = r.getBoundingClientRect(); if (b.width > 0) out.push([node.data[i], b.left]); }
    return out.sort((a, b) => a[1] - b[1]).map(c => c[0]).join(""); }"""


def test_a_negative_percentage_has_its_sign_where_a_positive_one_has_it():
    # in right-to-left text the sign of «۴۵٫۵٪» is drawn left of its digits (they are Arabic numbers
    # to the bidi algorithm after Persian words); in a left-to-right cell (the report's <bdi dir=ltr>)
    # right of them. A negative figure's, first written inside its isolate, went right in both.
    pos, neg = present.percent(Decimal("45.5")), present.percent(Decimal("-12.5"))
    body = (f"مثبت <span id=p>{html.escape(pos)}</span> و منفی <span id=n>{html.escape(neg)}</span> پایان<br>"
            f'<bdi dir="ltr"><span id=lp>{html.escape(pos)}</span></bdi> و <bdi dir="ltr"><span id=ln>{html.escape(neg)}</span></bdi>')
    with browser_page(width=900) as (page, errors):
        page.set_content(f'<!doctype html><html lang="fa" dir="rtl"><body style="font-size:20px">{body}</body></html>')
        drawn = {key: page.evaluate(SIDES, key) for key in ("p", "n", "lp", "ln")}
    assert drawn == {"p": "٪۴۵٫۵", "n": "٪-۱۲٫۵", "lp": "۴۵٫۵٪", "ln": "-۱۲٫۵٪"}, drawn
    assert errors == []

"""The typeface budgetwatch carries (foundation/fonts): the files are the npm package's, and installed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from foundation import fonts


def test_the_font_files_are_the_packages_own():
    for name, digest in fonts.SHA256.items():
        assert hashlib.sha256((fonts.DIRECTORY / name).read_bytes()).hexdigest() == digest, name
    assert set(fonts.FILES.values()) == set(fonts.SHA256)
    assert "SIL OPEN FONT LICENSE Version 1.1" in (fonts.DIRECTORY / "OFL.txt").read_text(encoding="utf-8")


def test_the_font_faces_name_each_weight_once():
    css = fonts.font_faces(lambda name: f"/fonts/{name}")
    assert css.count("@font-face") == 2
    assert 'font-weight: 400; font-display: swap; src: url("/fonts/Vazirmatn-Regular.woff2")' in css
    assert 'font-weight: 700; font-display: swap; src: url("/fonts/Vazirmatn-Bold.woff2")' in css


def test_the_consoles_stylesheet_names_the_files_as_font_faces_writes_them():
    css = (Path(__file__).parents[1] / "web" / "static" / "console.css").read_text(encoding="utf-8")
    assert fonts.font_faces(lambda name: f"/static/fonts/{name}") in css

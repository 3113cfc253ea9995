"""Vazirmatn, the typeface presentation.md names for what people read on screen and on paper.

The two weights the pages use (Regular 400, Bold 700, woff2) come from the ``vazirmatn`` package on
the npm registry, version :data:`VERSION`, under the SIL Open Font License 1.1 (``OFL.txt`` beside
them). The service runs on an intranet with no CDN, so the files travel with budgetwatch: the console
serves them (``/fonts/…``), and a report — a file that is mailed and archived — carries them inside
(:func:`embedded`). Where neither reaches (e-mails), Tahoma and sans-serif stand in, as
presentation.md says.

To take a newer release: ``npm pack vazirmatn@X.Y.Z``, copy ``package/fonts/webfonts/Vazirmatn-Regular.woff2``,
``…-Bold.woff2`` and ``package/OFL.txt`` here, and set :data:`VERSION` and :data:`SHA256`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import cache
from pathlib import Path

DIRECTORY = Path(__file__).parent
VERSION = "33.0.3"
FILES = {400: "Vazirmatn-Regular.woff2", 700: "Vazirmatn-Bold.woff2"}
SHA256 = {  # of the files as the npm package holds them (tests/test_fonts.py)
    "Vazirmatn-Regular.woff2": "e382101336c6eb32cfb31381c027d02d2e0354bad08f6a395d4088beb3db3d91",
    "Vazirmatn-Bold.woff2": "836fae7d42d83faa249bc00e0099592be98a1fa260d22d82f269b6091e585627",
}
FAMILY = 'Vazirmatn, Tahoma, "DejaVu Sans", sans-serif'


def font_faces(url: Callable[[str], str]) -> str:
    """The CSS ``@font-face`` rules of the two weights, each file at ``url(name)``."""
    return "\n".join(
        f'@font-face {{ font-family: Vazirmatn; font-style: normal; font-weight: {weight}; font-display: swap; '
        f'src: url("{url(name)}") format("woff2"); }}'
        for weight, name in FILES.items())


@cache
def embedded() -> str:
    """:func:`font_faces` with the files inside (``data:`` URLs): ~135 kB of CSS, for a report."""
    return font_faces(lambda name: "data:font/woff2;base64,"
                      + base64.b64encode((DIRECTORY / name).read_bytes()).decode("ascii"))

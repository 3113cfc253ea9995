"""What a listing's reader may ask of a connector's page iterator while paging.

``list_projects`` and ``list_agreements`` are async generators that yield one page at a time. A
reader that drives one with ``asend(n)``, ``n`` a page number no later than the page reached, asks
for page ``n`` to be read again now: the connector yields it (page number ``n``), and may be asked
again; sent ``None`` it goes on after the page it had reached, as if nothing had happened. A reader
that only iterates (``async for``) never asks. Why a reader asks: see :mod:`sync.listing`.
"""

from __future__ import annotations


def asked_again(ask: object, reached: int) -> int | None:
    """The page number to read again when a reader sent `ask` after page `reached`, else None."""
    if isinstance(ask, int) and not isinstance(ask, bool) and 1 <= ask <= reached:
        return ask
    return None

"""Page reads a listing costs while the list changes under it (a script, not a test).

    .venv/bin/python bench/listing_model.py

The model portal of tests/sync/test_listing_model.py (5 rows a page; after a page served, with the
given probability, one item added or removed anywhere), read by `sync.listing.paged_passes` over 60
seeded histories per line. Prints, per list size and rate of change, how many listings ended
complete and the page reads per listing. To compare with another version of sync/listing.py, run
it on that version's tree back to back (docs/decisions.md, "A listing that never holds still").
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync.listing import paged_passes  # noqa: E402
from tests.sync.test_listing_model import _Portal, _Run  # noqa: E402

CASES = [(40, 1.0), (400, 0.5), (400, 0.05), (2000, 0.02), (2000, 0.2)]  # (items, changes per page read)
HISTORIES = 60


def main() -> None:
    for size, churn in CASES:
        complete = reads = 0
        for seed in range(HISTORIES):
            portal = _Portal(random.Random(seed), size, churn, 0.5)
            served = [0]
            serve = portal._page

            def counted(no: int, serve=serve, served=served):
                served[0] += 1
                return serve(no)

            portal._page = counted

            async def on_new(items: list) -> None:
                pass

            listing = asyncio.run(paged_passes(_Run(), 1405, portal.pages, key_of=lambda i: i,
                                               items_of=lambda p: p.items, on_new=on_new, rank_of=lambda i: i))
            complete += listing.settled
            reads += served[0]
        print(f"{size:5d} items ({size // 5} pages), a change after {churn:.0%} of page reads: "
              f"complete {complete}/{HISTORIES}, {reads / HISTORIES:.0f} page reads per listing")


if __name__ == "__main__":
    main()

"""Reading a portal's listing of a fiscal year in passes, until one pass saw it hold still.

The portals compute their listing per request, so an item can move between pages while a client
pages through. Insertions only push items forward (seen twice, de-duplicated here); a removal can
pull an unread item back onto a page already read. So a pass during which the announced count fell
is followed by another pass, up to :data:`MAX_PASSES`; the union of the passes holds every item
that existed for the whole run. Rows the connector rejected are stored once, however many passes
saw them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the run frame hands itself in; no import at run time (it imports the sources)
    from sync.frame import SourceRun

MAX_PASSES = 3


@dataclass
class Listing:
    """What the passes over one year's listing found."""

    seen: set[str]  # business keys of every item listed
    announced: int  # the count the portal announced on the last page read
    rejected: int  # distinct rows the connector could not read
    settled: bool  # a pass saw the list hold still
    # a rejected row proves its item is still listed: the keys read from rejected rows, and whether
    # some rejected row had no readable key at all (then nothing can safely be marked gone)
    rejected_keys: frozenset[str] = frozenset()
    unkeyed_rejections: int = 0

    @property
    def listed(self) -> set[str]:
        """Every item the listing proves to exist: read, or rejected with a readable key."""
        return self.seen | self.rejected_keys


async def paged_passes(
    run: SourceRun,
    year: int,
    pages: Callable[[], AsyncIterator[Any]],
    key_of: Callable[[Any], str],
    items_of: Callable[[Any], list],
    on_new: Callable[[list], Awaitable[None]],
) -> Listing:
    """Read the listing in passes; ``on_new`` gets the items of each page not seen before."""
    seen: set[str] = set()
    rejected_rows: set[tuple] = set()
    rejected_keys: set[str] = set()
    announced = 0
    for pass_no in range(1, MAX_PASSES + 1):
        shrank = False
        previous: int | None = None
        async for page in pages():
            if previous is not None and page.announced_total < previous:
                shrank = True
            previous = page.announced_total
            announced = page.announced_total
            fresh_rejections = [r for r in page.rejections if (r.key, r.field, r.raw) not in rejected_rows]
            rejected_rows.update((r.key, r.field, r.raw) for r in page.rejections)
            rejected_keys.update(r.key for r in page.rejections if r.key)
            run.reject(fresh_rejections)
            items = items_of(page)
            new = [item for item in items if key_of(item) not in seen]
            seen.update(key_of(item) for item in new)
            run.observer.page(run.source, year, page.page_no, len(items), page.announced_total)
            if new:
                await on_new(new)
        if not shrank:
            return _listing(seen, announced, rejected_rows, rejected_keys, True)
        run.note(f"{year}: the list shrank while being read (pass {pass_no}); reading it again")
    return _listing(seen, announced, rejected_rows, rejected_keys, False)


def _listing(seen: set[str], announced: int, rejected_rows: set[tuple], rejected_keys: set[str],
             settled: bool) -> Listing:
    unkeyed = sum(1 for key, _field, _raw in rejected_rows if not key)
    return Listing(seen, announced, len(rejected_rows), settled, frozenset(rejected_keys), unkeyed)

"""Reading a portal's listing of a fiscal year in passes, until every item that stayed is surely read.

The portals compute their listing per request, so an item can move between pages while a client
pages through. Insertions only push items forward (seen twice, de-duplicated here); a removal can
pull an unread item back onto a page already read. So a pass during which the announced count fell
is followed by another pass, up to :data:`MAX_PASSES`, until one pass saw the list hold still or
the passes' uncertain ranges (where a removal may have hidden an item: see :func:`paged_passes`)
have nothing in common; the union of the passes then holds every item that existed for the whole
run. Rows the connector rejected are stored once, however many passes saw them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the run frame hands itself in; no import at run time (it imports the sources)
    from sync.frame import SourceRun

MAX_PASSES = 5


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


Gap = tuple[Any, Any]  # an open range of the listing's order (last rank before, first after; None: no bound)


def _intersect(a: list[Gap], b: list[Gap]) -> list[Gap]:
    """The ranges lying in both sets of open ranges (None as an upper bound: no bound)."""
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo = lo2 if lo1 is None else lo1 if lo2 is None else max(lo1, lo2)  # None: no bound
            hi = hi2 if hi1 is None else hi1 if hi2 is None else min(hi1, hi2)
            if hi is None or lo is None or lo < hi:
                out.append((lo, hi))
    return out


async def paged_passes(
    run: SourceRun,
    year: int,
    pages: Callable[[], AsyncIterator[Any]],
    key_of: Callable[[Any], str],
    items_of: Callable[[Any], list],
    on_new: Callable[[list], Awaitable[None]],
    rank_of: Callable[[Any], Any] | None = None,
) -> Listing:
    """Read the listing in passes; ``on_new`` gets the items of each page not seen before.

    ``rank_of`` gives an item's place in the portal's order (the contracts: Nezarat-4 by project
    code, SABA by id). When the count fell between two pages, a removal may have pulled items that
    lay just after the earlier page onto it, unread: the range between that page's last item and
    the next page's first is *uncertain* in this pass. An item that existed for the whole run and
    was never read lies in an uncertain range of every pass; so once the passes' uncertain ranges
    have no range in common, every such item was read, and the listing is complete even though the
    list never held still (issue 12, item 5). Otherwise the ranges still uncertain are named.
    """
    seen: set[str] = set()
    rejected_rows: set[tuple] = set()
    rejected_keys: set[str] = set()
    announced = 0
    uncertain: list[Gap] | None = None  # None: no pass yet
    for pass_no in range(1, MAX_PASSES + 1):
        shrank = False
        previous: int | None = None
        last_rank: Any = None
        gaps: list[Gap] = []
        async for page in pages():
            page_items = items_of(page)
            if previous is not None and page.announced_total < previous:
                shrank = True
                if rank_of is not None and last_rank is not None:
                    gaps.append((last_rank, rank_of(page_items[0]) if page_items else None))
                elif rank_of is not None:
                    gaps.append((None, None))
            if page_items and rank_of is not None:
                last_rank = rank_of(page_items[-1])
            previous = page.announced_total
            announced = page.announced_total
            fresh_rejections = [r for r in page.rejections if (r.key, r.field, r.raw) not in rejected_rows]
            rejected_rows.update((r.key, r.field, r.raw) for r in page.rejections)
            rejected_keys.update(r.key for r in page.rejections if r.key)
            run.reject(fresh_rejections)
            items = page_items
            new = [item for item in items if key_of(item) not in seen]
            seen.update(key_of(item) for item in new)
            run.observer.page(run.source, year, page.page_no, len(items), page.announced_total)
            if new:
                await on_new(new)
        if not shrank:
            return _listing(seen, announced, rejected_rows, rejected_keys, True)
        if rank_of is not None:
            uncertain = gaps if uncertain is None else _intersect(uncertain, gaps)
            if not uncertain and pass_no > 1:  # no range where an item could hide in every pass
                return _listing(seen, announced, rejected_rows, rejected_keys, True)
        run.note(f"{year}: the list shrank while being read (pass {pass_no}); reading it again")
    if uncertain:
        ranges = ", ".join(f"after {lo} up to {'the end' if hi is None else hi}" for lo, hi in uncertain[:5])
        run.note(f"{year}: items may be missing in the listing's order {ranges}")
    return _listing(seen, announced, rejected_rows, rejected_keys, False)


def _listing(seen: set[str], announced: int, rejected_rows: set[tuple], rejected_keys: set[str],
             settled: bool) -> Listing:
    unkeyed = sum(1 for key, _field, _raw in rejected_rows if not key)
    return Listing(seen, announced, len(rejected_rows), settled, frozenset(rejected_keys), unkeyed)

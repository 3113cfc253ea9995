"""Reading a portal's listing of a fiscal year, until every item that stayed is surely read.

The portals compute their listing per request, so an item can move between pages while a client
pages through. An insertion pushes items forward (seen twice, de-duplicated here); a removal pulls
items back, and one that lay just after the page last read lands on it, unread. The reasoning,
from the contracts' order (Nezarat-4 by project code, SABA by id) and the count every page
announces:

- a page read in one state of the list shows every item from its first rank to its last;
- two neighbouring pages show everything from the first's first to the second's last when no
  removal came between the reads (the earlier page read first) or no addition (the later page
  read first); a count that never fell (rose) between the two reads is taken as that. This is the
  heuristic every listing reader of such portals rests on: an addition and a removal between two
  reads that leave the count unchanged cannot be seen;
- where neither holds at a boundary between pages, the open range between them is *uncertain*.
  The reader at once asks for the pages either side of it again, in turn (up to
  :data:`REREADS_PER_FALL` reads, :mod:`connectors.paging`), until a pair of reads shows it whole;
- a pass that leaves nothing uncertain is complete, even if the list never held still. Otherwise
  another pass, up to :data:`MAX_PASSES`: an item that existed for the whole run and was never read
  lies in a range uncertain in every pass and shown by no read, so once the passes' ranges have
  nothing in common the listing is complete too. Else it ends incomplete, naming the ranges.

`tests/sync/test_listing_model.py` holds this to thousands of random histories of a model portal.
Rows the connector rejected are stored once, however many reads saw them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
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
    settled: bool  # every item that stayed is surely among those read
    # a rejected row proves its item is still listed: the keys read from rejected rows, and whether
    # some rejected row had no readable key at all (then nothing can safely be marked gone)
    rejected_keys: frozenset[str] = frozenset()
    unkeyed_rejections: int = 0

    @property
    def listed(self) -> set[str]:
        """Every item the listing proves to exist: read, or rejected with a readable key."""
        return self.seen | self.rejected_keys


Gap = tuple[Any, Any]  # an open range of the listing's order (last rank before, first after; None: no bound)
REREADS_PER_PASS = 60  # pages one pass may ask to read again (each costs a request)
REREADS_PER_FALL = 4  # of which for one fall of the count: the two pages either side, in turn


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


@dataclass
class _Read:
    """One page read in a pass: its place among the pass's reads and the ranks it showed."""

    index: int  # which read of the pass (0, 1, ...)
    first: Any  # rank of its first item; None for page 1 (it shows the list from its start)
    last: Any  # rank of its last item


def _still(gaps: list[Gap], boundary: Gap) -> bool:
    """Whether some of `gaps` overlaps the open range `boundary`."""
    lo, hi = boundary
    return any((lo is None or (g_hi is None or lo < g_hi)) and (hi is None or (g_lo is None or g_lo < hi))
               for g_lo, g_hi in gaps)


def _monotone(counts: list[int], since: int, rising: bool) -> bool:
    """Whether the counts announced from read `since` to the latest never fell (`rising`) / rose."""
    run = counts[since:]
    return all((b >= a) if rising else (b <= a) for a, b in zip(run, run[1:]))


def _cover(gaps: list[Gap], first: Any, last: Any) -> list[Gap]:
    """What remains of the open ranges `gaps` once a page read in one state of the list has shown
    every item from rank `first` to rank `last` (None: from the start / to the end of the list)."""
    out = []
    for lo, hi in gaps:
        below_first = first is not None and (lo is None or lo < first)  # (lo, first) not shown
        above_last = last is not None and (hi is None or last < hi)  # (last, hi) not shown
        overlaps = (first is None or hi is None or first < hi) and (last is None or lo is None or lo < last)
        if not overlaps:
            out.append((lo, hi))
            continue
        if below_first:
            out.append((lo, first))
        if above_last:
            out.append((last, hi))
    return out


async def paged_passes(
    run: SourceRun,
    year: int,
    pages: Callable[[], AsyncGenerator[Any, int | None]],
    key_of: Callable[[Any], str],
    items_of: Callable[[Any], list],
    on_new: Callable[[list], Awaitable[None]],
    rank_of: Callable[[Any], Any] | None = None,
) -> Listing:
    """Read the listing in passes; ``on_new`` gets the items of each page not seen before.

    ``pages`` starts a pass (a connector's ``list_projects``/``list_agreements``); ``rank_of`` gives
    an item's place in the portal's order. Without it (or when a page is not in order) a count that
    fell makes the whole pass uncertain. See the module's docstring for the reasoning.
    """
    seen: set[str] = set()
    rejected_rows: set[tuple] = set()
    rejected_keys: set[str] = set()
    announced = 0
    uncertain: list[Gap] | None = None  # what earlier passes left uncertain; None: no pass yet
    ordered = rank_of is not None  # the portal's order is known (ranks say where an item can hide)
    for pass_no in range(1, MAX_PASSES + 1):
        gaps: list[Gap] = []  # this pass's uncertain ranges, less what later reads showed
        counts: list[int] = []  # the count each read of this pass announced, in order
        read_at: dict[int, int] = {}  # page number -> which read of the pass last read it
        latest: dict[int, _Read] = {}  # page number -> its latest read that showed items
        end_no: int | None = None  # the page furthest read
        end_first: Any = None  # its first rank when it was read (the last page shows the list's end)
        rereads = 0
        repair: tuple[int, int, Gap] | None = None  # an uncertain boundary: the pages either side, its range
        tries = 0  # reads again still allowed for it
        reader = pages()
        ask: int | None = None
        try:
            while True:
                try:
                    page = await reader.asend(ask)
                except StopAsyncIteration:
                    break
                ask = None
                page_items = items_of(page)
                announced = page.announced_total
                fresh_rejections = [r for r in page.rejections if (r.key, r.field, r.raw) not in rejected_rows]
                rejected_rows.update((r.key, r.field, r.raw) for r in page.rejections)
                rejected_keys.update(r.key for r in page.rejections if r.key)
                run.reject(fresh_rejections)
                new = [item for item in page_items if key_of(item) not in seen]
                seen.update(key_of(item) for item in new)
                run.observer.page(run.source, year, page.page_no, len(page_items), page.announced_total)
                if new:
                    await on_new(new)
                no = page.page_no
                counts.append(page.announced_total)
                ranks = [rank_of(item) for item in page_items] if ordered and rank_of is not None else []
                if ranks != sorted(ranks):  # not the order the contract states: ranks say nothing
                    run.note(f"{year}: page {no} of the listing is not in the contract's order; "
                             "its ranges cannot be vouched for")
                    ordered, ranks, repair = False, [], None
                    gaps = [(None, None)] if gaps else []
                    uncertain = None if uncertain is None else [(None, None)] if uncertain else []
                further = end_no is None or no > end_no
                opened: Gap | None = None
                if further and end_no is not None:
                    # items may hide between the furthest page and this one when a page was skipped or
                    # the count fell since that page was last read (a removal pulls items back)
                    if no > end_no + 1 or not _monotone(counts, read_at[end_no], rising=True):
                        opened = ((latest[end_no].last if end_no in latest else None, ranks[0] if ranks else None)
                                  if ordered else (None, None))
                        gaps.append(opened)
                read_at[no] = len(counts) - 1
                if ranks:
                    read = _Read(len(counts) - 1, None if no == 1 else ranks[0], ranks[-1])
                    shown = [(read.first, read.last)]  # a page read shows its ranks, in one state
                    # with the latest read of a neighbouring page it shows both pages whole when no
                    # removal (that page read first) or no addition (this one first) came in between
                    before, after = latest.get(no - 1), latest.get(no + 1)
                    if before is not None and _monotone(counts, before.index, rising=True):
                        shown.append((before.first, read.last))
                    if after is not None and _monotone(counts, after.index, rising=False):
                        shown.append((read.first, after.last))
                    latest[no] = read
                    for first, last in shown:
                        gaps = _cover(gaps, first, last)
                        if uncertain is not None:
                            uncertain = _cover(uncertain, first, last)
                if further:
                    end_no, end_first = no, ranks[0] if ranks else None
                    repair, tries = ((no - 1, no, opened), REREADS_PER_FALL) if opened and ordered else (None, 0)
                if (repair is not None and no in repair[:2] and tries and rereads < REREADS_PER_PASS
                        and _still(gaps, repair[2])):
                    # the boundary stays uncertain: read the page on its other side again, now
                    ask = repair[0] if no == repair[1] else repair[1]
                    tries, rereads = tries - 1, rereads + 1
        finally:
            await reader.aclose()
        if ordered and (end_no == 1 or end_first is not None):
            # the last page shows the list from its first item to the end, in its state
            # (a first page that is also the last shows the whole list)
            gaps = _cover(gaps, None if end_no == 1 else end_first, None)
            if uncertain is not None:
                uncertain = _cover(uncertain, None if end_no == 1 else end_first, None)
        if not gaps:  # nothing this pass left uncertain: every item that stayed was read
            return _listing(seen, announced, rejected_rows, rejected_keys, True)
        if ordered:
            uncertain = gaps if uncertain is None else _intersect(uncertain, gaps)
            if not uncertain and pass_no > 1:  # no range where an item could hide in every pass
                return _listing(seen, announced, rejected_rows, rejected_keys, True)
        run.note(f"{year}: the list changed while being read and {len(gaps)} range(s) of it stayed uncertain "
                 f"after reading their neighbouring pages again (pass {pass_no}); reading it again")
    if uncertain:
        ranges = ", ".join(f"after {lo} up to {'the end' if hi is None else hi}" for lo, hi in uncertain[:5])
        run.note(f"{year}: items may be missing in the listing's order {ranges}")
    return _listing(seen, announced, rejected_rows, rejected_keys, False)


def _listing(seen: set[str], announced: int, rejected_rows: set[tuple], rejected_keys: set[str],
             settled: bool) -> Listing:
    unkeyed = sum(1 for key, _field, _raw in rejected_rows if not key)
    return Listing(seen, announced, len(rejected_rows), settled, frozenset(rejected_keys), unkeyed)

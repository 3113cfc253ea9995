"""Reading a portal's listing of a fiscal year, until every item that stayed is surely read.

The portals compute their listing per request, so an item can move between pages while a client
pages through. An insertion pushes items forward (seen twice, de-duplicated here); a removal pulls
items back, and one that lay just after the page last read lands on it, unread. The reasoning,
from the contracts' order (Nezarat-4 by project code, SABA by id) and the count every page
announces, keeps the ranges of that order that reads have *shown whole*:

- a page read shows every item from its first rank to its last (page 1 from the list's start; the
  page after which the connector went no further, to its end);
- pages read one after another with a count that never fell show everything from the first one's
  first item to the latest one's last (only additions came between: they push items on, never
  past an unread page); so do two neighbouring pages read at any distance in time when the count
  never fell between them (the earlier page read first) or never rose (the later page first).
  A count that did not fall is taken as "no removal": an addition and a removal between two reads
  that leave the count unchanged cannot be seen, the limit any reader of such portals has (the
  more likely the longer between two reads: details are read while the list is paged);
- where the boundary between the furthest page and the one before is not shown whole, the reader
  at once asks for the pages either side again, in turn (up to :data:`REREADS_PER_FALL` reads,
  :mod:`connectors.paging`), until a pair of reads shows it;
- a page the connector went back to on its own (a portal that shows its last page for a number
  beyond it, as Nezarat-4's grid does) shows no end of the list;
- an item that existed for the whole run and was never read lies in a *hole*: a range no read of
  any pass showed. No hole: the listing is complete, even if the list never held still. Otherwise
  another pass, up to :data:`MAX_PASSES`, then ``incomplete``, naming the holes.

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


Span = tuple[Any, Any]  # ranks (lowest, highest) of the listing's order; None: no bound that way
REREADS_PER_PASS = 60  # pages one pass may ask to read again (each costs a request)
REREADS_PER_FALL = 4  # of which for one boundary not shown whole: the two pages either side, in turn
_UNKNOWN = object()  # a chain of reads whose first pages showed no item yet


def _add(shown: list[Span], lo: Any, hi: Any) -> list[Span]:
    """`shown` (sorted, disjoint closed ranges) with [lo, hi] added; ranges that overlap or meet at
    an item (one's highest is the other's lowest) become one."""
    spans = sorted([*shown, (lo, hi)], key=lambda s: (s[0] is not None, s[0]))
    out: list[Span] = []
    for s_lo, s_hi in spans:
        if out and (s_lo is None or out[-1][1] is None or s_lo <= out[-1][1]):
            o_lo, o_hi = out[-1]
            out[-1] = (o_lo, None if o_hi is None or s_hi is None else max(o_hi, s_hi))
        else:
            out.append((s_lo, s_hi))
    return out


def _holes(shown: list[Span]) -> list[Span]:
    """The open ranges no range of `shown` holds: where an item that was never read can lie."""
    if not shown:
        return [(None, None)]
    holes = [(None, shown[0][0])] if shown[0][0] is not None else []
    holes += [(left[1], right[0]) for left, right in zip(shown, shown[1:])]
    if shown[-1][1] is not None:
        holes.append((shown[-1][1], None))
    return holes


def _holds(shown: list[Span], lo: Any, hi: Any) -> bool:
    """Whether `shown` holds every rank strictly between lo and hi (None: no bound that way)."""
    for h_lo, h_hi in _holes(shown):
        low = h_lo if lo is None else lo if h_lo is None else max(lo, h_lo)
        high = h_hi if hi is None else hi if h_hi is None else min(hi, h_hi)
        if low is None or high is None or low < high:  # the hole and the range share some ranks
            return False
    return True


@dataclass
class _Read:
    """One page read in a pass: its place among the pass's reads and the ranks it showed."""

    index: int  # which read of the pass (0, 1, ...)
    first: Any  # rank of its first item; None for page 1 (it shows the list from its start)
    last: Any  # rank of its last item


def _monotone(counts: list[int], since: int, rising: bool) -> bool:
    """Whether the counts announced from read `since` to the latest never fell (`rising`) / rose."""
    run = counts[since:]
    return all((b >= a) if rising else (b <= a) for a, b in zip(run, run[1:]))


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
    an item's place in the portal's order. Without it (or when a page is not in order) only a pass
    whose count never fell is complete. See the module's docstring for the reasoning.
    """
    seen: set[str] = set()
    rejected_rows: set[tuple] = set()
    rejected_keys: set[str] = set()
    announced = 0
    shown: list[Span] = []  # what the reads of every pass showed whole
    ordered = rank_of is not None  # the portal's order is known (ranks say where an item can hide)
    for pass_no in range(1, MAX_PASSES + 1):
        counts: list[int] = []  # the count each read of this pass announced, in order
        latest: dict[int, _Read] = {}  # page number -> its latest read that showed items
        end_no: int | None = None  # the page furthest read
        chain_no, chain_at, chain_first = 0, -1, _UNKNOWN  # pages read one after another, count never falling
        tail: list[Any] = []  # lower bounds shown to the list's end if the furthest page was its last
        rereads, tries = 0, 0
        repair: tuple[int, int] | None = None  # the pages either side of a boundary not shown whole
        reader = pages()
        ask: int | None = None
        try:
            while True:
                try:
                    page = await reader.asend(ask)
                except StopAsyncIteration:
                    break
                asked, ask = ask, None
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
                no, index = page.page_no, len(counts)
                counts.append(page.announced_total)
                ranks = [rank_of(item) for item in page_items] if ordered and rank_of is not None else []
                if ranks != sorted(ranks):  # not the order the contract states: ranks say nothing
                    run.note(f"{year}: page {no} of the listing is not in the contract's order; "
                             "its ranges cannot be vouched for")
                    ordered, ranks, repair, shown = False, [], None, []
                # reads one after another, page after page, while the count never fell: together they
                # show everything from the first one's first item (additions only push items on)
                if no == chain_no + 1 and chain_at == index - 1 and counts[index] >= counts[index - 1]:
                    chain_no, chain_at = no, index
                else:
                    chain_no, chain_at, chain_first = no, index, (None if no == 1 else _UNKNOWN)
                if ranks:
                    first = None if no == 1 else ranks[0]
                    if chain_first is _UNKNOWN:
                        chain_first = first
                    spans = [(first, ranks[-1]), (chain_first, ranks[-1])]  # this page; the chain to it
                    # a neighbouring page read earlier: both whole when no removal (the page before)
                    # or no addition (the page after) came between the two reads
                    before, after = latest.get(no - 1), latest.get(no + 1)
                    if before is not None and _monotone(counts, before.index, rising=True):
                        spans.append((before.first, ranks[-1]))
                    if after is not None and _monotone(counts, after.index, rising=False):
                        spans.append((first, after.last))
                    latest[no] = _Read(index, first, ranks[-1])
                    if ordered:
                        for lo, hi in spans:
                            shown = _add(shown, lo, hi)
                further = end_no is None or no > end_no
                if further or (asked is None and no == end_no):
                    # the page the connector goes on from (or, read on its own, again): if it goes no
                    # further, this page was the list's last when read and shows it to its end
                    tail = [lo for lo in ((None if no == 1 else ranks[0]) if ranks else _UNKNOWN, chain_first)
                            if lo is not _UNKNOWN]
                    if no == 1 and not ranks:
                        tail.append(None)  # an empty first page: the list was empty
                elif asked is None:
                    tail = []  # a page the connector went back to on its own (a portal that clamps): no end
                if further:
                    end_no = no
                    repair, tries = ((no - 1, no), REREADS_PER_FALL) if ordered and no > 1 else (None, 0)
                if repair is not None and no in repair and tries and rereads < REREADS_PER_PASS:
                    left, right = latest.get(repair[0]), latest.get(repair[1])
                    if left is not None and right is not None and not _holds(shown, left.last, right.first):
                        # the boundary is not shown whole: read the page on its other side again, now
                        ask = repair[0] if no == repair[1] else repair[1]
                        tries, rereads = tries - 1, rereads + 1
        finally:
            await reader.aclose()
        for lo in tail:  # the connector went no further: its furthest page was the list's last
            shown = _add(shown, lo, None)
        if ordered and not _holes(shown):
            return _listing(seen, announced, rejected_rows, rejected_keys, True)
        if not ordered and _monotone(counts, 0, rising=True):  # no removal while the pass read
            return _listing(seen, announced, rejected_rows, rejected_keys, True)
        holes = _holes(shown) if ordered else [(None, None)]
        run.note(f"{year}: the list changed while being read and {len(holes)} range(s) of it stayed uncertain "
                 f"after reading their neighbouring pages again (pass {pass_no}); reading it again")
    if ordered:
        ranges = ", ".join(f"after {'the start' if lo is None else lo} up to {'the end' if hi is None else hi}"
                           for lo, hi in _holes(shown)[:5])
        run.note(f"{year}: items may be missing in the listing's order {ranges}")
    else:
        run.note(f"{year}: items may be missing anywhere in the listing (its pages are not in the contract's "
                 "order, so no range can be named)")
    return _listing(seen, announced, rejected_rows, rejected_keys, False)


def _listing(seen: set[str], announced: int, rejected_rows: set[tuple], rejected_keys: set[str],
             settled: bool) -> Listing:
    unkeyed = sum(1 for key, _field, _raw in rejected_rows if not key)
    return Listing(seen, announced, len(rejected_rows), settled, frozenset(rejected_keys), unkeyed)

"""SABA's sync: the agreement listing of a year (stored as it is read), then operations and
performance of each agreement that owes them.

An agreement's listing item carries its credits, so every page is stored at once; its operations
and performance (two calls) are owed when it is new, when its ``modifiedAt`` moved, on a full run,
and when an earlier run stopped before reading them (``detail_synced`` in the store). An agreement
counts once in the outcome: new, else changed (itself, its credits or its details), else unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from connectors import SabaClient
from connectors.settings import PortalSettings
from foundation.records import AgreementDetail, ExpenseAgreementRecord, Rejection
from store import saba_rows
from sync.listing import paged_passes
from sync.sources.base import SourceSync
from sync.tasks import DetailReads


class SabaSync(SourceSync):
    source = "saba"
    tables_written = saba_rows.TABLES_WRITTEN
    client: SabaClient

    @staticmethod
    def connect(settings: PortalSettings) -> SabaClient:
        return SabaClient(settings)

    async def read_year(self, year: int) -> Callable[[], Awaitable[None]]:
        run, client = self.run, self.client
        full, modified_since = run.year_mode(year)
        max_modified: datetime | None = None
        detail_changed: set[int] = set()
        new_ids: set[int] = set()
        changed_ids: set[int] = set()
        portal_ids: dict[int, int] = {}

        def save(batch: list[tuple[int, AgreementDetail]]) -> set[int]:
            with run.engine.begin() as conn:
                return saba_rows.save_agreement_details(conn, run.run_id, batch)[1]

        reads = DetailReads(save, detail_changed.update)

        async def fetch(agreement_id: int, portal_id: int) -> None:
            detail = await client.agreement_detail(portal_id)
            run.observer.detail_done(run.source)
            if detail is None:  # 404: gone between the list and the detail
                run.reject([Rejection("saba", f"agreement id={portal_id}", "404: the agreement is no longer there")])
                with run.engine.begin() as conn:
                    run.outcome.gone += saba_rows.mark_agreement_gone_by_id(conn, run.run_id, agreement_id)
                return
            run.reject(detail.rejections)
            await reads.commit((agreement_id, detail))

        def schedule(owed: list[tuple[int, int]]) -> None:
            run.observer.details_queued(run.source, len(owed))
            for agreement_id, portal_id in owed:
                reads.spawn(fetch(agreement_id, portal_id))

        async def on_new(items: list[ExpenseAgreementRecord]) -> None:
            nonlocal max_modified
            for item in items:
                if max_modified is None or item.modified_at > max_modified:
                    max_modified = item.modified_at
            with run.engine.begin() as conn:
                saved = saba_rows.save_agreements(conn, run.run_id, items)
            new_ids.update(saved.new_ids)
            changed_ids.update(saved.changed_ids)
            by_key = {(item.agreement_no, item.fiscal_year): item.portal_id for item in items}
            portal_ids.update({store_id: by_key[key] for key, store_id in saved.ids.items()})
            owed = saved.owed
            if full:  # a full sync re-reads every agreement's details
                owed = [(store_id, portal_ids[store_id]) for store_id in saved.ids.values()]
            schedule(owed)
            await reads.hold_back()

        # details an interrupted run still owes, even if the listing no longer shows them as changed
        with run.engine.connect() as conn:
            owed_before = saba_rows.agreements_owing_detail(conn, year)
        if owed_before and not full:
            run.note(f"{year}: finishing {len(owed_before)} agreements an earlier run left unfinished")
            schedule(owed_before)
        listing = await reads.while_listing(paged_passes(
            run, year, lambda: client.list_agreements(fiscal_year=year, modified_since=modified_since),
            key_of=lambda a: a.agreement_no, items_of=lambda p: p.items, on_new=on_new,
            rank_of=lambda a: a.portal_id,
        ))

        async def close_year() -> None:
            await reads.drain()
            # an agreement counts once: new, else changed (itself or its details), else unchanged
            listed = set(portal_ids)
            updated = ((changed_ids | detail_changed) & listed) - new_ids
            run.outcome.inserted += len(new_ids)
            run.outcome.updated += len(updated)
            run.outcome.unchanged += len(listed - new_ids - updated)
            run.close_year(year, full, listing, max_modified, saba_rows.mark_agreements_gone)

        return close_year

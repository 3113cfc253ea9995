"""Nezarat-4's sync: the project list of a year, then a detail page per project that changed.

Incremental runs filter the list by the day of the stored high-water mark (minus the overlap) and
read the detail of a listed project only when its listed last-modified differs from the stored one
(or it is new); full runs read every detail. A detail page that says the project is not there marks
its year gone at once; one whose identity is unreadable is rejected whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from connectors import Nezarat4Client, YearNotOffered
from connectors.settings import PortalSettings
from foundation.jalali import TEHRAN
from foundation.records import ProjectDetail, ProjectListRow
from store import nezarat4_rows
from store.upsert import WriteCounts
from sync.listing import paged_passes
from sync.sources.base import SourceSync
from sync.tasks import DetailReads


class Nezarat4Sync(SourceSync):
    source = "nezarat4"
    tables_written = nezarat4_rows.TABLES_WRITTEN
    client: Nezarat4Client

    @staticmethod
    def connect(settings: PortalSettings) -> Nezarat4Client:
        return Nezarat4Client(settings)

    async def read_year(self, year: int) -> Callable[[], Awaitable[None]]:
        run, client = self.run, self.client
        full, modified_from = run.year_mode(year)
        modified_day = modified_from.astimezone(TEHRAN).date() if modified_from else None
        max_modified: datetime | None = None

        def save(batch: list[ProjectDetail]) -> WriteCounts:
            with run.engine.begin() as conn:
                return nezarat4_rows.save_project_details(conn, run.run_id, batch)

        reads = DetailReads(save, run.count)

        async def fetch(row: ProjectListRow) -> None:
            detail = await client.project_detail(row.portal_id, year)
            run.observer.detail_done(run.source)
            if detail is None:
                with run.engine.begin() as conn:
                    run.outcome.gone += nezarat4_rows.mark_project_gone(conn, run.run_id, year, row.project_code)
                return
            run.reject(detail.rejections)
            if isinstance(detail, ProjectDetail):  # else RejectedDetail: identity unreadable, store nothing
                await reads.commit(detail)

        async def on_new(rows: list[ProjectListRow]) -> None:
            nonlocal max_modified
            for row in rows:
                if max_modified is None or row.last_modified > max_modified:
                    max_modified = row.last_modified
            if full:
                wanted = rows
            else:
                with run.engine.connect() as conn:
                    stored = nezarat4_rows.stored_project_versions(conn, year, [r.project_code for r in rows])
                wanted = [r for r in rows if stored.get(r.project_code, None) != r.last_modified or r.project_code not in stored]
                run.outcome.unchanged += len(rows) - len(wanted)
            run.observer.details_queued(run.source, len(wanted))
            for row in wanted:
                reads.spawn(fetch(row))
            await reads.hold_back()

        try:
            listing = await reads.while_listing(paged_passes(
                run, year, lambda: client.list_projects(fiscal_year=year, modified_from=modified_day),
                key_of=lambda r: r.project_code, items_of=lambda p: p.rows, on_new=on_new,
                rank_of=lambda r: r.project_code,
            ))
        except YearNotOffered as exc:  # the other years are still read (a review of the contract)
            await reads.drain()
            with run.engine.connect() as conn:
                held = nezarat4_rows.holds_year(conn, year)
            run.year_not_offered(year, exc.message, held=held)

            async def nothing_to_close() -> None:
                return None

            return nothing_to_close

        async def close_year() -> None:
            await reads.drain()
            run.close_year(year, full, listing, max_modified, nezarat4_rows.mark_projects_gone)

        return close_year

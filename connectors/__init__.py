"""Connectors: read the Nezarat-4 and SABA portals into typed records (see records.py).

    from connectors import Nezarat4Client, SabaClient, PortalSettings

    async with Nezarat4Client(settings) as nz:
        async for page in nz.list_projects(fiscal_year=1405):   # ProjectListPage
            ...
        detail = await nz.project_detail(portal_id=48213, fiscal_year=1405)
        # ProjectDetail | RejectedDetail (identity unreadable: store nothing) | None (not there)

    async with SabaClient(settings) as sb:
        async for page in sb.list_agreements(fiscal_year=1405):  # AgreementListPage
            ...
        detail = await sb.agreement_detail(portal_id=9123)      # AgreementDetail | None (404)

Each portal package has the same three parts: the reading layer (nezarat4/pages.py,
saba/payloads.py: the only code that knows markup or field names), canonical.py (raw values ->
records, unreadable rows -> Rejection) and client.py (the conversation). The shared mechanism —
in-flight limit, retries with back-off, Retry-After, rate limit, counters — is http.py. What can
go wrong is in errors.py.

Nezarat-4 pages are read in a worker process (``PortalSettings.parse_workers``, default 1; 0 reads
on the event loop), see offload.py. As with any multiprocessing, a script using the client must
keep its work under ``if __name__ == "__main__":`` (the worker imports the script's module).
"""

from foundation.lazy import lazy_exports

# Exported lazily (PEP 562): every command loads the configuration, which imports
# connectors.settings and so this package; the clients (BeautifulSoup, httpx) load only for a sync.
_WHERE = {
    **dict.fromkeys(("AuthenticationFailed", "ConnectorError", "LayoutChanged", "ProtocolError",
                     "SourceUnavailable", "YearNotOffered"), "connectors.errors"),
    **dict.fromkeys(("Nezarat4Client", "RejectedDetail"), "connectors.nezarat4"),
    **dict.fromkeys(("AgreementDetail", "AgreementListPage", "CreditRow", "ExpenseAgreementRecord", "ExpenseCredit",
                     "OperationPerformanceRecord", "OperationRecord", "ProgressReportRecord", "ProjectDetail",
                     "ProjectListPage", "ProjectListRow", "Rejection"), "foundation.records"),
    "SabaClient": "connectors.saba",
    "PortalSettings": "connectors.settings",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_exports(__name__, _WHERE)

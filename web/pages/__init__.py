"""The console's pages, one module each with its router: overview, deviations, project and
agreement pages, field visits, reconciliation, sync runs, users."""

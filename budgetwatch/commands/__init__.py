"""The commands of the `budgetwatch` CLI, one module per area (see budgetwatch.app)."""

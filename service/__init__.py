"""The unattended service: ``budgetwatch serve`` and ``budgetwatch status``."""

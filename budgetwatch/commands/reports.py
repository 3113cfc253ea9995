"""Commands of reports/ (being built)."""

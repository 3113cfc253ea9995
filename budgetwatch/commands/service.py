"""Commands of service/ (being built)."""

"""Commands of alerts/ (being built)."""

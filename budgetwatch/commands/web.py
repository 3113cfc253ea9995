"""Commands of web/ (being built)."""

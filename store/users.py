"""The web console's users (being built: issue 16)."""

"""The consolidation group's sign-off of monitoring periods (being built: issue 15)."""

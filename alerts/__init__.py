"""Alerts: deviation digests to the experts responsible for each agency, through an outbox."""

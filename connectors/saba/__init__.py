"""SABA (expense agreements, JSON API): payloads.py reads JSON structure, canonical.py values,
client.py holds the conversation with the API."""

from .client import SabaClient

__all__ = ["SabaClient"]

"""Nezarat-4 (capital projects, ASP.NET WebForms): pages.py reads markup, canonical.py values,
client.py holds the conversation with the portal."""

from .canonical import RejectedDetail
from .client import Nezarat4Client

__all__ = ["Nezarat4Client", "RejectedDetail"]

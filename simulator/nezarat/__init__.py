"""Nezarat-4 (capital projects), served as nezarat4.md specifies: an ASP.NET WebForms look-alike.

portal.py is the application (routing, sessions, login, the list's postbacks); pages.py writes the
markup. Split as connectors/nezarat4/ is on the reading side: sessions apart from pages.
"""

from simulator.nezarat.portal import NezaratPortal, Session, parse_jalali_day

__all__ = ["NezaratPortal", "Session", "parse_jalali_day"]

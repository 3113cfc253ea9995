"""Monitoring reports (گزارش نظارتی): one model of the period, rendered to Excel and HTML, and the
consolidation group's sign-off that freezes a period into an archive.

Public surface::

    reports.model.build(conn, Selection, routing=..., ...) -> Report     # the one model
    reports.excel.render(report) -> bytes                                # .xlsx
    reports.html.render(report) -> str; reports.html.render_project(conn, code, ...) -> str
    reports.archive.approve(engine, ...) / periods(...) / diff(...)      # the sign-off

Where things are: forecast.py (completion forecast), cycle.py (the monitoring cycle), precision.py
(the places each figure is shown with, on the page and in the workbook alike), charts.py (chart
geometry for the HTML's inline SVG), templates/ (Jinja2, autoescaped), files.py (a report file
written whole, never into the signed archive).
"""

"""Alerts: deviation digests to the experts responsible for each agency, through an outbox.

The public surface (docs/architecture.md, contracts):

- :func:`queue_digests` records each expert's due digest in the outbox, in the transaction that
  marks its deviations as told to that expert (alerts.outbox);
- :func:`dispatch` sends what is due through SMTP and marks it (alerts.dispatch);
- :func:`preview` renders an expert's next digest without queuing it; :func:`write_digests` /
  :func:`write_demo_digests` write the next digests as .eml files without queuing them;
- ``store.alerts.outbox_summary(conn)`` tells how the outbox stands.
"""

from alerts.dispatch import DispatchReport, dispatch
from alerts.outbox import DEMO_EXPERTS, QueueReport, preview, queue_digests, write_demo_digests, write_digests

__all__ = ["DEMO_EXPERTS", "DispatchReport", "QueueReport", "dispatch", "preview", "queue_digests",
           "write_demo_digests", "write_digests"]

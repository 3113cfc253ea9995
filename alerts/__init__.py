"""Alerts: deviation digests to the experts responsible for each agency, through an outbox.

The public surface (docs/architecture.md, contracts):

- :func:`queue_digests` records each expert's due digest in the outbox, in the transaction that
  marks its deviations as told to that expert (alerts.outbox); a digest that cannot be made a
  message (:class:`NotBuilt`) is said and skipped, the others queued;
- :func:`dispatch` sends what is due through SMTP and marks it (alerts.sending); :func:`retry_now`
  makes a failed or waiting message due at the next dispatch; a :class:`SmtpSession` given to it
  can be cut from another thread (``abort``: the service's stop);
- :func:`preview` renders an expert's next digest without queuing it; :func:`write_digests` /
  :func:`write_demo_digests` write the next digests as .eml files without queuing them;
- ``store.alerts.outbox_summary(conn)`` tells how the outbox stands.
"""

from foundation.lazy import lazy_exports

# Exported lazily (PEP 562): every command loads the configuration, which imports alerts.settings
# and so this package; the outbox, rendering and SMTP are loaded only by the commands that use them.
_WHERE = {"DispatchReport": "alerts.sending", "dispatch": "alerts.sending", "DEMO_EXPERTS": "alerts.outbox",
          "NotBuilt": "alerts.outbox", "QueueReport": "alerts.outbox", "preview": "alerts.outbox",
          "queue_digests": "alerts.outbox",
          "retry_now": "alerts.sending", "SmtpSession": "alerts.smtp",
          "write_demo_digests": "alerts.outbox", "write_digests": "alerts.outbox"}

__all__ = sorted(_WHERE)


__getattr__ = lazy_exports(__name__, _WHERE)

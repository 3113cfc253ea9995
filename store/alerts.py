"""The alerts' tables and queries: the outbox of e-mails owed to experts."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from store.models import Column, UTCDateTime, _when


class AlertOutbox(SQLModel, table=True):
    """E-mails owed to experts. Written in the transaction that changes a deviation; sent later.

    The unique key makes queuing idempotent: one mail per deviation, event, severity and recipient.
    """

    __tablename__ = "alert_outbox"
    __table_args__ = (sa.UniqueConstraint("deviation_id", "event", "severity", "recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    deviation_id: int = Field(foreign_key="deviation.id", index=True)
    event: str = Field(max_length=16)  # new | escalated
    severity: str = Field(max_length=16)
    recipient: str
    group: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = _when(index=True)
    attempts: int = 0
    last_error: str | None = None
    message_id: str | None = Field(default=None, unique=True)

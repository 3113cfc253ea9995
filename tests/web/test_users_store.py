"""Schema 0005: the console's tables come and go with their migration, on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from store.db import _alembic_config, current_revision, upgrade
from store.users import add_user, get_user, record_action, recent_actions


def test_0005_down_and_up_again(engine):
    command.downgrade(_alembic_config(engine), "0004")
    names = set(sa.inspect(engine).get_table_names())
    assert not names & {"console_user", "console_action"}
    assert "alert_outbox" in names  # 0004's tables stay
    upgrade(engine, "0005")
    assert current_revision(engine) == "0005"
    assert {"console_user", "console_action"} <= set(sa.inspect(engine).get_table_names())
    upgrade(engine)  # the store's code reads the users' later columns too (0013's session_epoch)
    with engine.begin() as conn:
        add_user(conn, "Nima", display_name="نیما", role="expert", groups=("social",), password_hash="$argon2id$x")
        record_action(conn, "nima", "login", detail="from 127.0.0.1")
    with engine.connect() as conn:
        user = get_user(conn, "NIMA ")
        assert (user.username, user.groups, user.disabled) == ("nima", ("social",), False)
        assert recent_actions(conn)[0].action == "login"

"""Alembic environment: runs migrations on the engine budgetwatch hands over (see store.db)."""

from alembic import context

from store.models import METADATA

config = context.config


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use: build one from sqlalchemy.url
        from store.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by copying it, then dropping the old one and renaming the copy:
            # with foreign keys enforced, dropping a table others refer to fails (or deletes their
            # rows). Enforcement is off for the migration (the pragma only takes effect outside a
            # transaction) and the whole store is checked before the migration commits.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    # pysqlite opens its transaction only at the first INSERT/UPDATE/DELETE: DDL
                    # before it (a batch copy's CREATE TABLE) would commit on its own and outlive
                    # a failed migration. An explicit BEGIN makes the whole migration one transaction.
                    connection.exec_driver_sql("BEGIN")
                context.configure(
                    connection=connection,
                    target_metadata=METADATA,
                    render_as_batch=sqlite,
                    compare_type=True,
                )
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration would leave rows referring to missing rows: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


run_migrations_online()

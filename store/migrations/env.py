"""Alembic environment: runs migrations on the engine budgetwatch hands over (see store.db)."""

from alembic import context

from store.models import METADATA

config = context.config


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use: build one from sqlalchemy.url
        from store.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=METADATA,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()

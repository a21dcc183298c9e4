"""The benchmark database: PostgreSQL only, created when missing, migrated, emptied each run.

The run empties the booking tables, so it refuses any database whose name does not say
"bench": a DATABASE_URL exported for the tests or the development server must never be wiped.
"""

import environ
import psycopg
from psycopg import sql

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench"


class BenchDatabaseError(Exception):
    pass


def database_url(environment: dict[str, str]) -> str:
    """BENCH_DATABASE_URL, else DATABASE_URL, else the local default; checked to be safe to empty."""
    url = environment.get("BENCH_DATABASE_URL") or environment.get("DATABASE_URL") or DEFAULT_URL
    config = environ.Env.db_url_config(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise BenchDatabaseError("The benchmark needs PostgreSQL: the database URL is not a postgres:// one.")
    if "bench" not in config["NAME"]:
        raise BenchDatabaseError(
            f"The benchmark empties its database, so its name must contain 'bench' (got {config['NAME']!r}). "
            "Set BENCH_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/bench."
        )
    return url


def database_create(url: str) -> str | None:
    """Create the database named in `url` unless it exists; its name when it was created."""
    config = environ.Env.db_url_config(url)
    server = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            return None
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
    return config["NAME"]


def database_prepare() -> None:
    """Migrate, then empty every booking table (Django must be set up on the bench database)."""
    from django.apps import apps
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    tables = [model._meta.db_table for model in apps.get_app_config("booking").get_models()]
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE")
            .format(sql.SQL(", ").join(map(sql.Identifier, tables)))
            .as_string(connection.connection)
        )


def database_analyze() -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum would in production, and
    write the load's pages out now (CHECKPOINT), so that the measurements that follow do not
    share the disk with the background writer flushing them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]

from django.contrib.postgres.operations import UnaccentExtension
from django.db import migrations


class Migration(migrations.Migration):
    """unaccent(), for accent-insensitive patient search. A trusted extension from PostgreSQL 13:
    the database owner may create it without superuser rights. Nothing happens on SQLite."""

    dependencies = [("booking", "0010_lean_session_indexes")]

    operations = [UnaccentExtension()]

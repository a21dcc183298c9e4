"""PostgreSQL holds booking rules 2 and 3 itself: no two holding sessions overlap on a chair
(turnover buffer included, through chair_free_at) or for a patient.

SQLite has no exclusion constraints; there the service's checks under its write lock are the
guard, and the development database is the only one that runs on it.
"""

from django.db import migrations

HOLDING = "('booked', 'confirmed', 'arrived', 'completed')"

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    f"""ALTER TABLE booking_session ADD CONSTRAINT session_chair_no_overlap
        EXCLUDE USING gist (chair_id WITH =, tstzrange(starts_at, chair_free_at, '[)') WITH &&)
        WHERE (status IN {HOLDING})""",
    f"""ALTER TABLE booking_session ADD CONSTRAINT session_patient_no_overlap
        EXCLUDE USING gist (patient_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&)
        WHERE (status IN {HOLDING})""",
]
BACKWARD = [
    "ALTER TABLE booking_session DROP CONSTRAINT IF EXISTS session_patient_no_overlap",
    "ALTER TABLE booking_session DROP CONSTRAINT IF EXISTS session_chair_no_overlap",
]


def _run(statements: list[str]):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("booking", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]

from django.db import migrations

DEFAULT_RULES = [("email", 72 * 60), ("sms", 24 * 60), ("sms", 2 * 60)]


def add_default_rules(apps, schema_editor):
    Clinic = apps.get_model("booking", "Clinic")
    ReminderRule = apps.get_model("notifications", "ReminderRule")
    for clinic in Clinic.objects.filter(reminder_rules__isnull=True):
        ReminderRule.objects.bulk_create(
            ReminderRule(clinic=clinic, channel=channel, offset_minutes=offset) for channel, offset in DEFAULT_RULES
        )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial"), ("booking", "0003_field_limits")]

    operations = [migrations.RunPython(add_default_rules, migrations.RunPython.noop)]

import django.db.models.deletion
from django.db import migrations, models


def clinic_of_each_flag(apps, schema_editor):
    """A visit's flag belongs to the visit's clinic; one without a visit, to the patient's."""
    StaffFlag = apps.get_model("notifications", "StaffFlag")
    for flag in StaffFlag.objects.select_related("session", "patient").iterator():
        flag.clinic_id = flag.session.clinic_id if flag.session_id else flag.patient.clinic_id
        flag.save(update_fields=["clinic"])


class Migration(migrations.Migration):

    dependencies = [
        ("booking", "0007_single_line_text"),
        ("notifications", "0008_inbox_text_per_clinic"),
    ]

    operations = [
        migrations.AddField(
            model_name="staffflag",
            name="clinic",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="staff_flags", to="booking.clinic"
            ),
        ),
        migrations.RunPython(clinic_of_each_flag, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="staffflag",
            name="clinic",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="staff_flags", to="booking.clinic"
            ),
        ),
    ]

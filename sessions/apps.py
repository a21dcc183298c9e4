from django.apps import AppConfig


class BookingConfig(AppConfig):
    # The folder is `sessions/` as the layout asks, but the label `sessions` belongs to
    # django.contrib.sessions.
    name = "sessions"
    label = "booking"
    verbose_name = "Booking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin
        from django.db.models.signals import post_migrate

        from . import audit, waitlist  # noqa: F401 (waitlist: its receivers record freed chair time)
        from .admin import unscoped_admins_restrict
        from .roles import booking_roles_sync

        post_migrate.connect(booking_roles_sync, sender=self)
        for name in ("Clinic", "OpeningHours", "ClosedDate", "Chair", "StaffingBlock", "Protocol", "Patient"):
            audit.track(self.get_model(name))
        audit.track_staff_access()
        # django.contrib.admin, ready before this app, has imported every app's admin by now.
        unscoped_admins_restrict(admin.site)

from django.apps import AppConfig


class BookingConfig(AppConfig):
    # The folder is `sessions/` as the layout asks, but the label `sessions` belongs to
    # django.contrib.sessions.
    name = "sessions"
    label = "booking"
    verbose_name = "Booking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .roles import booking_roles_sync

        post_migrate.connect(booking_roles_sync, sender=self)

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from sessions.audit import track

        from . import receivers, staff_tasks  # noqa: F401  (connect the booking signals)
        from .roles import notification_roles_sync

        post_migrate.connect(notification_roles_sync, sender=self)
        track(self.get_model("ReminderRule"))
        track(self.get_model("MessageTemplate"))

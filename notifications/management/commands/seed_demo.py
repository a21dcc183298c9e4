from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from notifications.demo import demo_history_messages, demo_messages_settle
from sessions.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create the demo clinic, its protocols, a staff login, patients with booked series and four weeks of "
        "past visits. Safe to rerun."
    )

    def handle(self, *args: object, **options: object) -> None:
        # The demo login's password is published: it must never reach a database with real patients.
        if not settings.DEBUG:
            raise CommandError("seed_demo runs only with DEBUG on (scheduler.settings.dev).")
        now = timezone.now()
        # One transaction: past visits never stay without their messages, which a rerun would not add.
        with transaction.atomic():
            seed = demo_seed(now=now)
            demo_messages_settle(sessions=seed.today, now=now)
            # The booking side wrote the past visits; their messages are this app's to write.
            messages = demo_history_messages(sessions=seed.history)
        if seed.history:
            self.stdout.write(f"Wrote the past four weeks: {len(seed.history)} visits and their {messages} messages")
        for line in seed.booked:
            self.stdout.write(f"Booked {line}")
        for line in seed.refused:
            self.stdout.write(self.style.WARNING(f"Not booked {line}"))
        self.stdout.write(
            self.style.SUCCESS(f"Demo clinic '{seed.clinic}' ready. Staff login: {seed.username} / {seed.password}")
        )
        self.stdout.write(f"API token for {seed.username}: {seed.token}")

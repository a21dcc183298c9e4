"""Every word a patient reads is in the translation catalogs, with a Spanish translation that is
neither missing nor fuzzy, and the Spanish link page, emails, texts and replies carry no English.

The catalog is checked against the code as it is now: `makemessages` runs on a copy of the
sources, so a string added without a translation fails here, not in front of a patient."""

import gettext
import html
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from notifications.inbound import _say
from notifications.links import link_create
from notifications.models import Channel, Message, Purpose
from notifications.rendering import render
from notifications.wording import default_wording
from sessions.clock import local_date, wall_clock
from sessions.models import Offer, Opening, Recall
from sessions.services import series_book
from sessions.waitlist import waitlist_join
from tests.factories import clinic_make, patient_make, protocol_make

ROOT = Path(settings.BASE_DIR)
CATALOG = ROOT / "locale" / "es" / "LC_MESSAGES" / "django.po"
# What `makemessages` reads: the apps and the templates (tests and benchmarks hold no patient words).
SOURCES = ["manage.py", "notifications", "sessions", "scheduler", "templates", "locale"]


def _tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """The Spanish catalog as `make messages` would leave it for the code as it is now."""
    copy = tmp_path_factory.mktemp("sources")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy(source, copy / name)
    made = _tool(sys.executable, "manage.py", "makemessages", "-l", "es", "--no-location", cwd=copy)
    assert made.returncode == 0, made.stderr
    return copy / "locale" / "es" / "LC_MESSAGES" / "django.po"


def test_every_patient_facing_string_has_a_spanish_translation(regenerated):
    checked = _tool("msgfmt", "--check", "--statistics", "-o", "/dev/null", str(regenerated))

    assert checked.returncode == 0, checked.stderr
    # e.g. "133 translated messages." and nothing about fuzzy or untranslated ones
    assert re.search(r"^\d+ translated messages\.$", checked.stderr, re.M), checked.stderr
    assert "fuzzy" not in checked.stderr and "untranslated" not in checked.stderr, checked.stderr
    # Nor is the committed catalog behind the code: no entry it holds has gone from the code.
    assert "#~ msgid" not in regenerated.read_text(), "the catalog holds strings the code no longer uses"


def test_the_compiled_catalog_is_the_committed_one(tmp_path):
    compiled = tmp_path / "django.mo"
    assert _tool("msgfmt", "--check", "-o", str(compiled), str(CATALOG)).returncode == 0

    with compiled.open("rb") as fresh, CATALOG.with_suffix(".mo").open("rb") as committed:
        assert gettext.GNUTranslations(committed)._catalog == gettext.GNUTranslations(fresh)._catalog


def english_phrases() -> set[str]:
    """The English of the catalog cut at its placeholders: phrases of two words or more."""
    text = CATALOG.read_text()
    ids = re.findall(r'^msgid(?:_plural)? ((?:".*"\n)+)', text, re.M)
    phrases = set()
    for quoted in ids:
        msgid = "".join(re.findall(r'"(.*)"', quoted)).replace("\\n", "\n")
        for piece in re.split(r"\{\w+\}|%\(\w+\)s|[.:?,\n]", msgid):
            words = piece.split()
            if len(words) >= 2 and not {"STOP", "START"} & set(words):
                phrases.add(" ".join(words))
    return phrases


def english_left_in(text: str) -> list[str]:
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())
    return sorted(phrase for phrase in english_phrases() if phrase in text)


@pytest.fixture
def spanish_series(db):
    clinic = clinic_make()
    protocol = protocol_make(
        clinic, kind="induction", patient_name="Wellness visit", patient_name_es="Visita de bienestar",
        fasting_hours=6, driver_required=True, no_driving_hours=24,
    )  # fmt: skip
    first = local_date(timezone.now(), clinic.zone) + timedelta(days=4)
    starts = [wall_clock(first + timedelta(days=2 * n), datetime.min.time().replace(hour=10), clinic.zone)
              for n in range(protocol.session_count)]  # fmt: skip
    series = series_book(patient=patient_make(clinic, language="es"), protocol=protocol, starts=starts)
    return list(series.sessions.order_by("starts_at"))


def test_the_spanish_link_page_has_no_english_at_any_step(spanish_series):
    session = spanish_series[1]
    token = link_create(session=session)
    client = Client()
    page = client.get(f"/r/{token}").content.decode()
    move = client.get(f"/r/{token}?step=move").content.decode()
    later = re.findall(r'name="starts_at" value="([^"]+)"', move)[-1]
    reflow = client.get(f"/r/{token}", {"step": "reflow", "starts_at": later}).content.decode()
    refused = client.post(f"/r/{token}", {"action": "confirm"})  # the driver box left empty

    assert '<html lang="es">' in page and "Antes de su cita" in page and "No coma nada" in page
    assert "Elegir otra hora" in move
    for shown in (page, move, reflow, refused.content.decode()):
        assert english_left_in(shown) == []
    assert "Marque la casilla" in refused.content.decode()


def test_spanish_emails_texts_and_replies_have_no_english(spanish_series):
    sent = Message.objects.filter(patient=spanish_series[0].patient)
    bodies = [render(message, token="t0ken") for message in sent]
    replies = [_say(spanish_series[0].patient, key, session=spanish_series[0]) for key in ("confirmed", "help", "ack")]

    assert {m.purpose for m in sent} >= {Purpose.BOOKED, Purpose.REMINDER}
    assert {m.channel for m in sent} == {Channel.SMS, Channel.EMAIL}
    for rendered in bodies:
        assert rendered is not None
        assert english_left_in(f"{rendered.subject} {rendered.body}") == []
    for reply in replies:
        assert english_left_in(reply) == []
    for purpose in Purpose:
        for channel in Channel:
            wording = default_wording(purpose, channel, "es")
            assert english_left_in(f"{wording.subject} {wording.body}") == [], (purpose, channel)


def test_the_spanish_offer_and_recall_pages_have_no_english(spanish_series):
    patient, clinic = spanish_series[0].patient, spanish_series[0].clinic
    booster = protocol_make(clinic, kind="booster", patient_name="Follow-up", patient_name_es="Seguimiento")
    entry = waitlist_join(patient=patient, protocol=booster, earliest=local_date(timezone.now(), clinic.zone),
                          latest=local_date(timezone.now(), clinic.zone) + timedelta(days=9))  # fmt: skip
    opening = Opening.objects.create(clinic=clinic, starts_at=spanish_series[2].starts_at + timedelta(hours=3),
                                     created_at=timezone.now())  # fmt: skip
    offer = Offer.objects.create(clinic=clinic, opening=opening, entry=entry, patient=patient,
                                 created_at=timezone.now(), expires_at=timezone.now() + timedelta(hours=1))  # fmt: skip
    recall = Recall.objects.create(clinic=clinic, patient=patient, series=spanish_series[0].series, protocol=booster,
                                   due_on=local_date(timezone.now(), clinic.zone) + timedelta(days=20))  # fmt: skip
    client = Client(REMOTE_ADDR="10.77.0.1")
    offer_url, recall_url = f"/r/{link_create(offer=offer)}", f"/r/{link_create(recall=recall)}"

    shown = [client.get(offer_url).content.decode(), client.get(recall_url).content.decode()]
    shown.append(client.post(offer_url, {"action": "decline"}, follow=True).content.decode())
    shown.append(client.post(recall_url, {"action": "not_now"}, follow=True).content.decode())

    assert "Reservar esta hora" in shown[0] and "Reserve su próxima cita" in shown[1]
    assert "Sigue en la lista" in shown[2] and "Le volveremos a preguntar" in shown[3]
    for page in shown:
        assert '<html lang="es">' in page
        assert english_left_in(page) == []

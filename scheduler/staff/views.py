"""The staff web app: each view parses a form, calls a booking or inbox service or a selector,
and renders.

Every object is looked up through the user's clinics (`sessions.access.clinics_for`): another
clinic's board, patient or session answers 404, which does not even confirm that it exists.
A booking rule that refuses a change is shown as a message on the page, never as an error.
"""

from base64 import b32encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from functools import wraps
from itertools import groupby

import django_otp
from axes.helpers import get_cool_off, get_failure_limit
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from notifications import inbox
from sessions import selectors as booking_selectors
from sessions import services
from sessions.access import clinics_for
from sessions.calendar import BookingConflict
from sessions.models import AuditEvent, Clinic, Session

from . import forms, selectors, two_factor
from .board import board_build

MOVE_DAYS = 14
BOARD_REACH = timedelta(days=3660)
OUTBOX_PAGE = 50


def staff_view(permission: str | None = None) -> Callable:
    """Signed-in users only: others go to the sign-in page; a user without `permission` gets 403."""

    def decorate(view: Callable) -> Callable:
        guarded = permission_required(permission, raise_exception=True)(view) if permission else view
        return wraps(view)(login_required(guarded))

    return decorate


def _render(request: HttpRequest, template: str, context: dict, *, section: str = "") -> HttpResponse:
    user = request.user
    nav = {
        "clinics": list(clinics_for(user)),
        "inbox_count": selectors.inbox_open_count(user=user) if user.has_perm("notifications.view_staffflag") else 0,
    }
    return render(request, template, {**context, "nav": nav, "section": section})


@contextmanager
def _refusals_shown(request: HttpRequest, prefix: str) -> Iterator[None]:
    """A booking rule's refusal, or input the service rejects, becomes a message for the user."""
    try:
        yield
    except BookingConflict as conflict:
        rule = f" (rule {conflict.rule}: {conflict.rule_text}.)" if conflict.rule else ""
        messages.error(request, f"{prefix}: {conflict.detail}{rule}")
    except ValidationError as error:
        messages.error(request, f"{prefix}: {' '.join(error.messages)}")


def _board_url(clinic_id: int, day: date) -> str:
    return f"{reverse('staff:board', args=[clinic_id])}?date={day.isoformat()}"


def _back_to_board(request: HttpRequest, session: Session) -> HttpResponse:
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure()):
        return redirect(wanted)
    return redirect(_board_url(session.clinic_id, session.clinic.local(session.starts_at).date()))


@staff_view()
def home(request: HttpRequest) -> HttpResponse:
    first = clinics_for(request.user).first()
    if first is not None and request.user.has_perm("booking.view_session"):
        return redirect("staff:board", clinic_id=first.pk)
    return _render(request, "staff/home.html", {})


# Day board and the session actions on it


@staff_view("booking.view_session")
def board(request: HttpRequest, clinic_id: int) -> HttpResponse:
    clinic = get_object_or_404(clinics_for(request.user), pk=clinic_id)
    day = _day(request.GET.get("date", ""), clinic)
    # Asked once here, not once per session row in the template.
    can = {
        action: request.user.has_perm(f"booking.{permission}")
        for action, permission in (
            ("mark", "mark_attendance"), ("confirm", "confirm_session"), ("move", "move_session"),
            ("cancel", "cancel_session"),
        )
    }  # fmt: skip
    context = {"board": board_build(clinic=clinic, day=day), "can": can}
    return _render(request, "staff/board.html", context, section="board")


def _day(value: str, clinic: Clinic) -> date:
    """The asked-for day, or today in the clinic's zone when the value is missing, malformed or
    so far off (year 1, year 9999) that the days around it cannot be computed."""
    today = clinic.local(timezone.now()).date()
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return today
    return day if abs(day - today) <= BOARD_REACH else today


@require_POST
@staff_view("booking.mark_attendance")
def session_mark(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    form = forms.MarkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose arrived, completed or no-show.")
        return _back_to_board(request, session)
    status = Session.Status(form.cleaned_data["status"])
    with _refusals_shown(request, "Not marked"):
        services.session_mark(session=session, status=status, actor=request.user)
        messages.success(request, f"{session.patient}: session {session.number} marked {status.label.lower()}.")
    return _back_to_board(request, session)


@require_POST
@staff_view("booking.confirm_session")
def session_confirm(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    form = forms.ConfirmForm(request.POST)
    form.is_valid()
    with _refusals_shown(request, "Not confirmed"):
        services.session_confirm(
            session=session,
            via=Session.Channel.STAFF,
            driver_confirmed=form.cleaned_data.get("driver_confirmed", False),
            actor=request.user,
        )
        messages.success(request, f"{session.patient}: session {session.number} confirmed.")
    return _back_to_board(request, session)


@require_POST
@staff_view("booking.cancel_session")
def session_cancel(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    form = forms.CancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not cancelled: give a reason (at most 300 characters).")
        return _back_to_board(request, session)
    with _refusals_shown(request, "Not cancelled"):
        services.session_cancel(
            session=session, reason=form.cleaned_data["reason"], via=Session.Channel.STAFF, actor=request.user
        )
        messages.success(request, f"{session.patient}: session {session.number} cancelled.")
    return _back_to_board(request, session)


@staff_view("booking.move_session")
def session_move(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    if request.method == "POST":
        form = forms.MoveForm(request.POST)
        chair = None
        if form.is_valid():
            chair_id, starts_at = form.cleaned_data["slot"]
            chair = session.clinic.chairs.filter(pk=chair_id).first()
        if chair is None:
            messages.error(request, "Not moved: choose one of the offered times.")
            return redirect("staff:session-move", session_id=session.pk)
        with _refusals_shown(request, "Not moved"):
            moved = services.session_reschedule(
                session=session,
                starts_at=starts_at,
                chair=chair,
                reason=form.cleaned_data["reason"],
                via=Session.Channel.STAFF,
                actor=request.user,
            )
            when = session.clinic.local(moved.starts_at)
            messages.success(request, f"{session.patient}: session {session.number} moved to {when:%a %d %b %H:%M}.")
            return redirect(_board_url(session.clinic_id, when.date()))
        return redirect("staff:session-move", session_id=session.pk)
    history = AuditEvent.objects.filter(session=session).select_related("actor")
    context = {"session": session, "days": _slot_days(session), "history": history}
    return _render(request, "staff/move.html", context, section="board")


def _slot_days(session: Session) -> list[tuple[date, list[dict]]]:
    clinic = session.clinic
    chair_names = dict(clinic.chairs.values_list("id", "name"))
    slots = booking_selectors.session_slots(session=session, days=MOVE_DAYS)
    offered = [
        {
            "value": forms.slot_value(slot.chair_id, slot.starts_at),
            "starts": clinic.local(slot.starts_at),
            "chair": chair_names[slot.chair_id],
            "same_chair": slot.chair_id == session.chair_id,
        }
        for slot in slots
    ]
    return [(day, list(group)) for day, group in groupby(offered, key=lambda s: s["starts"].date())]


# Patients and booking


@staff_view("booking.view_patient")
def patients(request: HttpRequest) -> HttpResponse:
    search = forms.PatientSearchForm(request.GET)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    found = selectors.patients_search(user=request.user, query=query)
    return _render(
        request, "staff/patients.html", {"search": search, "query": query, "found": found}, section="patients"
    )


@staff_view("booking.view_patient")
def patient(request: HttpRequest, patient_id: int) -> HttpResponse:
    found = get_object_or_404(
        selectors.patients_for(request.user).select_related("clinic", "contact_status"), pk=patient_id
    )
    return _render(
        request, "staff/patient.html", {"record": selectors.patient_record(patient=found)}, section="patients"
    )


@staff_view("booking.add_series")
def book(request: HttpRequest) -> HttpResponse:
    """Step one: find the patient, or register a new one."""
    clinics = clinics_for(request.user)
    search = forms.PatientSearchForm(request.GET)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    new_patient = forms.PatientForm(request.POST or None, clinics=clinics)
    if request.method == "POST":
        if not request.user.has_perm("booking.add_patient"):
            raise PermissionDenied
        if new_patient.is_valid():
            created = new_patient.save()
            messages.success(request, f"{created} registered. Now book their series.")
            return redirect("staff:book-series", patient_id=created.pk)
    context = {
        "search": search,
        "query": query,
        "found": selectors.patients_search(user=request.user, query=query),
        "new_patient": new_patient,
    }
    return _render(request, "staff/book.html", context, section="book")


@staff_view("booking.add_series")
def book_series(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Step two: protocol, first start and chair; Preview shows the plan, Book saves it."""
    patient = get_object_or_404(selectors.patients_for(request.user).select_related("clinic"), pk=patient_id)
    form = forms.SeriesForm(request.POST or None, clinic=patient.clinic)
    plan = None
    if request.method == "POST" and form.is_valid():
        booking = {
            "patient": patient,
            "protocol": form.cleaned_data["protocol"],
            "first_start": form.cleaned_data["first_start"],
            "chair": form.cleaned_data["chair"],
        }
        if request.POST.get("action") == "book":
            with _refusals_shown(request, "Not booked"):
                series = services.series_book(**booking, actor=request.user, via=Session.Channel.STAFF)
                first = patient.clinic.local(series.sessions.order_by("number").first().starts_at)
                messages.success(request, f"Booked {series.protocol} for {patient} from {first:%a %d %b %H:%M}.")
                return redirect("staff:patient", patient_id=patient.pk)
        with _refusals_shown(request, "No preview"):
            plan = _preview(booking, services.series_plan(**booking))
    return _render(request, "staff/book_series.html", {"patient": patient, "form": form, "plan": plan}, section="book")


def _preview(booking: dict, planned: list[services.PlannedSession]) -> dict:
    clinic = booking["patient"].clinic
    protocol = booking["protocol"]
    chair_names = dict(clinic.chairs.values_list("id", "name"))
    rows = [
        {
            "number": p.number,
            "starts": clinic.local(p.slot.starts_at) if p.slot else None,
            "ends": clinic.local(p.slot.ends_at) if p.slot else None,
            "chair": chair_names.get(p.slot.chair_id) if p.slot else None,
            "conflict": p.conflict,
        }
        for p in planned
    ]
    unplaced = list(range(len(rows) + 1, protocol.session_count + 1))
    bookable = not unplaced and all(p.conflict is None for p in planned)
    return {"rows": rows, "unplaced": unplaced, "bookable": bookable, "protocol": protocol}


# Inbox and outbox


@staff_view("notifications.view_staffflag")
def inbox_page(request: HttpRequest) -> HttpResponse:
    return _render(request, "staff/inbox.html", {"inbox": selectors.inbox_open(user=request.user)}, section="inbox")


@require_POST
@staff_view("notifications.change_staffflag")
def inbound_handled(request: HttpRequest, inbound_id: int) -> HttpResponse:
    text = get_object_or_404(selectors.inbox_texts_for(request.user), pk=inbound_id)
    if inbox.inbox_text_mark_handled(text=text, actor=request.user):
        messages.success(request, "Text marked handled.")
    else:
        messages.info(request, "That text was already handled.")
    return redirect("staff:inbox")


@require_POST
@staff_view("notifications.change_staffflag")
def flag_handled(request: HttpRequest, flag_id: int) -> HttpResponse:
    flag = get_object_or_404(selectors.flags_for(request.user), pk=flag_id)
    if inbox.flag_mark_handled(flag=flag, actor=request.user):
        messages.success(request, "Flag marked handled.")
    else:
        messages.info(request, "That flag was already handled.")
    return redirect("staff:inbox")


@staff_view("notifications.view_outboxtext")
def outbox(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.outbox_for(request.user), OUTBOX_PAGE).get_page(request.GET.get("page"))
    return _render(request, "staff/outbox.html", {"page": page}, section="outbox")


# Signing in: the lockout page and the second step after the password

CODE_ERRORS = {
    two_factor.Verdict.WRONG: "That is not the code your app shows now. Check that the app entry is for "
    "this account and that your phone's clock is right.",
    two_factor.Verdict.THROTTLED: "Too many wrong codes: wait a little (longer after each wrong code), then "
    "enter the code your app shows now.",
}
CODE_STATUS = {two_factor.Verdict.THROTTLED: 429}


def sign_in_locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: both sign-in pages answer a locked-out attempt with this."""
    context = {
        "minutes": max(1, round(get_cool_off(request).total_seconds() / 60)),
        "failure_limit": get_failure_limit(request, credentials),
    }
    return render(request, "staff/locked_out.html", context, status=429)


def _next_url(request: HttpRequest) -> str:
    wanted = request.GET.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure()):
        return wanted
    return reverse("staff:home")


def _code_checked(request: HttpRequest, form: forms.CodeForm, device: TOTPDevice) -> two_factor.Verdict:
    """Signs the session in with `device` when the form's code passes; otherwise says why not."""
    verdict = two_factor.totp_device_check(device=device, code=form.cleaned_data["code"])
    if verdict == two_factor.Verdict.PASSED:
        django_otp.login(request, device)
    else:
        form.add_error("code", CODE_ERRORS[verdict])
    return verdict


@staff_view()
def verify(request: HttpRequest) -> HttpResponse:
    device = two_factor.totp_device_for(user=request.user)
    if device is None or request.user.is_verified():
        return redirect(_next_url(request))
    form = forms.CodeForm(request.POST if request.method == "POST" else None)
    verdict = _code_checked(request, form, device) if form.is_valid() else None
    if verdict == two_factor.Verdict.PASSED:
        return redirect(_next_url(request))
    return render(request, "staff/verify.html", {"form": form}, status=CODE_STATUS.get(verdict, 200))


@staff_view()
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Sets up an authenticator app: required of some roles in production, open to all staff."""
    if two_factor.totp_device_for(user=request.user) is not None:
        if not request.user.is_verified():
            return redirect_to_login(_next_url(request), reverse("staff:verify"))
        messages.info(
            request, "Two-factor sign-in is already on. For a new phone, ask an administrator to remove the old one."
        )
        return redirect(_next_url(request))
    device = two_factor.totp_device_start(user=request.user)
    form = forms.CodeForm(request.POST if request.method == "POST" else None)
    verdict = _code_checked(request, form, device) if form.is_valid() else None
    if verdict == two_factor.Verdict.PASSED:
        messages.success(request, "Two-factor sign-in is on: each sign-in now asks for a code from your app.")
        return redirect(_next_url(request))
    context = {
        "form": form,
        "uri": device.config_url,
        "secret": b32encode(device.bin_key).decode(),
        # Drawn here from the device's own address: nothing in it comes from a request.
        "qr": mark_safe(two_factor.totp_qr_svg(device=device)),
        "required": two_factor.second_factor_required(user=request.user),
    }
    return render(request, "staff/two_factor.html", context, status=CODE_STATUS.get(verdict, 200))

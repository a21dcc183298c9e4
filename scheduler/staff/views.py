"""The staff web app: each view parses a form, calls a booking or inbox service or a selector,
and renders.

Every object is looked up through the user's clinics (`sessions.access.clinics_for`): another
clinic's board, patient or session answers 404, which does not even confirm that it exists.
A booking rule that refuses a change is shown as a message on the page, never as an error.
"""

from base64 import b32encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from functools import wraps
from itertools import groupby

import django_otp
from axes.helpers import get_cool_off, get_failure_limit
from django import forms as django_forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from notifications import inbox, offers, planning
from sessions import recalls, services, waitlist
from sessions import selectors as booking_selectors
from sessions.access import clinics_for, within_clinics
from sessions.calendar import BookingConflict
from sessions.models import AuditEvent, Chair, Clinic, Offer, Opening, Recall, Series, Session, WaitlistEntry

from ..reports import figures as report_figures
from ..reports import page as report_page
from . import forms, selectors, two_factor
from .board import board_build, month_build, week_build

MOVE_DAYS = 14
BOARD_REACH = timedelta(days=3660)
OUTBOX_PAGE = 50


def staff_view(permission: str | None = None) -> Callable:
    """Signed-in users only: others go to the sign-in page; a user without `permission` gets 403."""

    def decorate(view: Callable) -> Callable:
        guarded = permission_required(permission, raise_exception=True)(view) if permission else view
        return wraps(view)(login_required(guarded))

    return decorate


def _render(
    request: HttpRequest, template: str, context: dict, *, section: str = "", status: int = 200
) -> HttpResponse:
    user = request.user
    nav = {
        "clinics": list(clinics_for(user)),
        "inbox_count": selectors.inbox_open_count(user=user) if user.has_perm("notifications.view_staffflag") else 0,
    }
    return render(request, template, {**context, "nav": nav, "section": section}, status=status)


@contextmanager
def _refusals_shown(request: HttpRequest, prefix: str, form: django_forms.Form | None = None) -> Iterator[None]:
    """A booking rule's refusal, or input the service rejects, becomes a message for the user;
    input refused by a field of `form` is shown at that field."""
    try:
        yield
    except BookingConflict as conflict:
        _refusal_shown(request, prefix, conflict)
    except ValidationError as error:
        fields = getattr(error, "error_dict", {})
        if form is not None and fields and set(fields) <= set(form.fields):
            for field, errors in fields.items():
                form.add_error(field, errors)
        else:
            messages.error(request, f"{prefix}: {' '.join(error.messages)}")


def _refusal_shown(request: HttpRequest, prefix: str, conflict: BookingConflict) -> None:
    rule = f" (rule {conflict.rule}: {conflict.rule_text}.)" if conflict.rule else ""
    messages.error(request, f"{prefix}: {booking_selectors.conflict_explained(conflict)}{rule}")


def _form_errors(form: django_forms.Form) -> str:
    return " ".join(error for errors in form.errors.values() for error in errors)


def _board_url(clinic_id: int, day: date) -> str:
    return f"{reverse('staff:board', args=[clinic_id])}?date={day.isoformat()}"


def _back_to_board(request: HttpRequest, session: Session) -> HttpResponse:
    return _back(request, _board_url(session.clinic_id, session.clinic.local(session.starts_at).date()))


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """To the page the form came from (`next`, on this site only), else to `default`."""
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure()):
        return redirect(wanted)
    return redirect(default)


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
    board = board_build(clinic=clinic, day=day)
    month = month_build(clinic=clinic, day=day, today=board.today)
    context = {"board": board, "month": month, "can": _session_actions(request)}
    return _render(request, "staff/board.html", context, section="board")


@staff_view("booking.view_session")
def week(request: HttpRequest, clinic_id: int) -> HttpResponse:
    clinic = get_object_or_404(clinics_for(request.user), pk=clinic_id)
    context = {"week": week_build(clinic=clinic, day=_day(request.GET.get("date", ""), clinic))}
    return _render(request, "staff/week.html", context, section="board")


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
    form = forms.MarkForm(request.POST, session=session)
    if not form.is_valid():
        messages.error(request, f"Not marked: {_form_errors(form)}")
        return _back_to_board(request, session)
    status = Session.Status(form.cleaned_data["status"])
    with _refusals_shown(request, "Not marked"):
        marked = services.session_mark(
            session=session, status=status, at=form.cleaned_data["at"], via=Session.Channel.STAFF, actor=request.user
        )
        messages.success(
            request, f"{session.patient}: session {session.number} marked {status.label.lower()}{_chair_times(marked)}."
        )
    return _back_to_board(request, session)


def _chair_times(session: Session) -> str:
    zone = session.clinic.zone
    if session.chair_out_at is not None:
        return f", chair-out {session.chair_out_at.astimezone(zone):%H:%M}"
    if session.chair_in_at is not None:
        return f", chair-in {session.chair_in_at.astimezone(zone):%H:%M}"
    return ""


# Undoing a mark is the nurse's; undoing a cancel books the session again, as a scheduler does.
UNDO_PERMISSION = {
    Session.Status.ARRIVED: "booking.mark_attendance",
    Session.Status.COMPLETED: "booking.mark_attendance",
    Session.Status.NO_SHOW: "booking.mark_attendance",
    Session.Status.CANCELLED: "booking.cancel_session",
}


@require_POST
@staff_view()
def session_undo(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    if not request.user.has_perm(UNDO_PERMISSION.get(session.status, "booking.mark_attendance")):
        raise PermissionDenied
    before = session.get_status_display().lower()
    with _refusals_shown(request, "Not undone"):
        undone = services.session_undo(session=session, via=Session.Channel.STAFF, actor=request.user)
        messages.success(
            request,
            f"{session.patient}: session {session.number} is no longer {before}; "
            f"it is {undone.get_status_display().lower()} again.",
        )
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
    """Move one session to an offered slot or another time. One that only a re-flow can move
    (the series gap pins it) is sent to the re-flow preview at the time asked for."""
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    if not session.is_upcoming:
        return redirect("staff:session-reflow", session_id=session.pk)
    if request.method != "POST":
        return _move_page(request, session, forms.ReflowForm(clinic=session.clinic, initial=_reflow_initial(session)))
    form = forms.MoveForm(request.POST, clinic=session.clinic)
    if not form.is_valid():
        messages.error(request, f"Not moved: {_form_errors(form)}")
        return redirect("staff:session-move", session_id=session.pk)
    chair, starts_at = None, form.cleaned_data["starts_at"]
    if form.cleaned_data["slot"] is not None:
        chair_id, starts_at = form.cleaned_data["slot"]
        chair = session.clinic.chairs.filter(pk=chair_id).first()
        if chair is None:
            messages.error(request, "Not moved: choose one of the offered times.")
            return redirect("staff:session-move", session_id=session.pk)
    try:
        moved = services.session_reschedule(
            session=session, starts_at=starts_at, chair=chair, reason=form.cleaned_data["reason"],
            via=Session.Channel.STAFF, actor=request.user,
        )  # fmt: skip
    except BookingConflict as conflict:
        _refusal_shown(request, "Not moved", conflict)
        if conflict.code != "series_gap":
            return redirect("staff:session-move", session_id=session.pk)
        messages.info(
            request, f"Session {session.number} cannot move there alone: move it and re-space the later sessions below."
        )
        return redirect(_reflow_url(session, starts_at, chair))
    except ValidationError as error:
        messages.error(request, f"Not moved: {' '.join(error.messages)}")
        return redirect("staff:session-move", session_id=session.pk)
    when = session.clinic.local(moved.starts_at)
    messages.success(request, f"{session.patient}: session {session.number} moved to {when:%a %d %b %H:%M}.")
    # Back where the move began (the page's `next`), else the day the session was on.
    return _back_to_board(request, session)


@staff_view("booking.move_session")
def session_reflow(request: HttpRequest, session_id: int) -> HttpResponse:
    """Re-flow (rule 11): GET previews, POST commits. For an upcoming session, move it and
    re-space the later ones; for a cancelled or missed one, book its make-up and re-space."""
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    if request.method == "POST":
        return _reflow_commit(request, session)
    asked = "reflow-starts_at" in request.GET
    form = forms.ReflowForm(request.GET if asked else None, clinic=session.clinic, initial=_reflow_initial(session))
    steps = None
    if asked and form.is_valid():
        with _refusals_shown(request, "No preview"):
            steps = services.series_reflow_plan(
                session=session, starts_at=form.cleaned_data["starts_at"], chair=form.cleaned_data["chair"],
                via=Session.Channel.STAFF,
            )  # fmt: skip
    return _move_page(request, session, form, steps)


class _PlanChanged(Exception):
    """The re-flow would now book other times than the preview showed."""


def _reflow_commit(request: HttpRequest, session: Session) -> HttpResponse:
    form = forms.ReflowForm(request.POST, clinic=session.clinic)
    if not form.is_valid():
        messages.error(request, f"Not re-flowed: {_form_errors(form)}")
        return redirect("staff:session-reflow", session_id=session.pk)
    starts_at, chair = form.cleaned_data["starts_at"], form.cleaned_data["chair"]
    changed = None
    with _refusals_shown(request, "Not re-flowed"):
        try:
            changed = _reflow_as_previewed(request, session, form)
        except _PlanChanged:
            messages.error(request, "Not re-flowed: the times changed since the preview. Check them and commit again.")
        except IntegrityError:
            # The overlap constraints are checked when the whole change commits.
            messages.error(request, "Not re-flowed: another booking took one of these times at the same moment.")
    if changed is None:
        return redirect(_reflow_url(session, starts_at, chair))
    zone = session.clinic.zone
    times = "; ".join(
        f"session {s.number} {'made up on' if s.makeup_for_id else 'moved to'} "
        f"{s.starts_at.astimezone(zone):%a %d %b %H:%M}"
        for s in changed
    )
    messages.success(request, f"{session.patient}: {times or 'nothing needed to change'}.")
    return redirect(reverse("staff:patient", args=[session.patient_id]) + f"#series-{session.series_id}")


def _reflow_as_previewed(request: HttpRequest, session: Session, form: forms.ReflowForm) -> list[Session]:
    """The calendar may have changed since the preview: the patient must not be sent times the
    scheduler never saw, so an outcome other than the preview's is rolled back."""
    with transaction.atomic():
        changed = services.series_reflow(
            session=session, starts_at=form.cleaned_data["starts_at"], chair=form.cleaned_data["chair"],
            reason=form.cleaned_data["reason"], via=Session.Channel.STAFF, actor=request.user,
        )  # fmt: skip
        booked = forms.plan_signature([(s.number, s.chair_id, s.starts_at) for s in changed])
        if booked != form.cleaned_data["plan"]:
            raise _PlanChanged
    return changed


def _reflow_url(session: Session, starts_at: datetime, chair: Chair | None) -> str:
    query = {"reflow-starts_at": f"{session.clinic.local(starts_at):%Y-%m-%dT%H:%M}"}
    if chair is not None:
        query["reflow-chair"] = str(chair.pk)
    return f"{reverse('staff:session-reflow', args=[session.pk])}?{urlencode(query)}#reflow"


def _reflow_initial(session: Session) -> dict:
    """The session's own time; for a make-up whose time has passed, that time of day on the next
    day it is still to come."""
    clinic = session.clinic
    start = clinic.local(session.starts_at).replace(tzinfo=None)
    now = clinic.local(timezone.now()).replace(tzinfo=None)
    if start <= now:
        start = datetime.combine(now.date(), start.time())
        start += timedelta(days=1) if start <= now else timedelta(0)
    return {"starts_at": start}


def _move_page(
    request: HttpRequest,
    session: Session,
    reflow: forms.ReflowForm,
    steps: list[services.ReflowStep] | None = None,
) -> HttpResponse:
    history = AuditEvent.objects.filter(session=session).select_related("actor")
    context = {
        "session": session,
        "days": _slot_days(session) if session.is_upcoming else [],
        "window": selectors.session_gap_window(session=session) if session.is_upcoming else None,
        "history": history,
        "reflow": reflow,
        "preview": _reflow_preview(session, steps) if steps is not None else None,
    }
    return _render(request, "staff/move.html", context, section="board")


def _reflow_preview(session: Session, steps: list[services.ReflowStep]) -> dict:
    clinic = session.clinic
    chair_names = dict(clinic.chairs.values_list("id", "name"))
    rows = [
        {
            "number": step.number,
            "from": clinic.local(step.from_starts_at) if step.from_starts_at else None,
            "to": clinic.local(step.slot.starts_at) if step.slot else None,
            "chair": chair_names.get(step.slot.chair_id) if step.slot else None,
            "makeup": step.session_id is None,
            "changes": step.changes,
            "conflict": step.conflict,
            "why": _conflict_detail(step.conflict, step.number),
        }
        for step in steps
    ]
    blocked = any(step.conflict for step in steps)
    unplanned = []
    if blocked:  # the steps stop at the session that cannot be placed: name those left after it
        later = Session.objects.filter(
            series_id=session.series_id, number__gt=steps[-1].number, status__in=Session.UPCOMING
        )
        unplanned = sorted(set(later.values_list("number", flat=True)))
    return {
        "rows": rows,
        "unplanned": unplanned,
        "blocked": blocked,
        "bookable": not blocked and any(step.changes for step in steps),
        "plan": forms.plan_signature(
            [(step.number, step.slot.chair_id, step.slot.starts_at) for step in steps if step.slot and step.changes]
        ),
    }


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
    context = {
        "record": selectors.patient_record(patient=found),
        "can": _session_actions(request),
        "contact": forms.ContactForm(instance=found),
        "waiting": found.waitlist_entries.filter(status=WaitlistEntry.Status.WAITING).select_related(
            "protocol", "session"
        ),
        "waitlist_form": forms.WaitlistForm(patient=found),
    }
    return _render(request, "staff/patient.html", context, section="patients")


@require_POST
@staff_view("booking.add_waitlistentry")
def patient_waitlist(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Put the patient on the waitlist, for a new series or an earlier time for one of their sessions."""
    found = get_object_or_404(selectors.patients_for(request.user).select_related("clinic"), pk=patient_id)
    form = forms.WaitlistForm(request.POST, patient=found)
    if form.is_valid():
        wish = {key: form.cleaned_data[key] for key in form.fields}
        try:
            entry = waitlist.waitlist_join(patient=found, actor=request.user, **wish)
        except ValidationError as error:
            messages.error(request, f"Not added: {' '.join(error.messages)}")
        else:
            messages.success(request, f"{found} is on the waitlist for {entry.wish}.")
    else:
        messages.error(request, f"Not added: {_form_errors(form)}")
    return redirect(reverse("staff:patient", args=[found.pk]) + "#waitlist")


@require_POST
@staff_view("booking.change_waitlistentry")
def waitlist_remove(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = get_object_or_404(selectors.waitlist_for(request.user).select_related("patient", "protocol"), pk=entry_id)
    if waitlist.waitlist_remove(entry=entry, actor=request.user):
        messages.success(request, f"{entry.patient} is off the waitlist for {entry.wish}.")
    else:
        messages.info(request, "That entry was no longer waiting.")
    return _back(request, reverse("staff:waitlist"))


@staff_view("booking.view_waitlistentry")
def waitlist_page(request: HttpRequest) -> HttpResponse:
    """Every clinic's waiting entries the user may see, in the order a freed time offers them."""
    clinics = list(clinics_for(request.user))
    lists = [(clinic, list(waitlist.waitlist_waiting(clinic=clinic))) for clinic in clinics]
    # The offer out to each entry, if any: staff see who holds a time and until when.
    out = Offer.objects.filter(status=Offer.Status.OFFERED, entry__in=[e for _, entries in lists for e in entries])
    by_entry = {offer.entry_id: offer for offer in out.select_related("opening")}
    for _, entries in lists:
        for entry in entries:
            entry.offer_out = by_entry.get(entry.pk)
    return _render(request, "staff/waitlist.html", {"lists": lists}, section="waitlist")


@staff_view("booking.view_recall")
def recalls_page(request: HttpRequest) -> HttpResponse:
    """Boosters due after completed series, per clinic: overdue, due, soon due, snoozed."""
    lists = [(clinic, recalls.recalls_open(clinic=clinic)) for clinic in clinics_for(request.user)]
    return _render(request, "staff/recalls.html", {"lists": lists}, section="recalls")


@require_POST
@staff_view("booking.change_recall")
def recall_answer(request: HttpRequest, recall_id: int) -> HttpResponse:
    """The patient's answer to a recall call: "not now" until a day, or declined."""
    recall = get_object_or_404(within_clinics(Recall.objects.select_related("patient", "clinic"), request.user),
                               pk=recall_id)  # fmt: skip
    try:
        if request.POST.get("answer") == "decline":
            recalls.recall_decline(recall=recall, actor=request.user)
            messages.success(request, f"{recall.patient}: booster declined.")
        else:
            form = forms.RecallSnoozeForm(request.POST)
            if not form.is_valid():
                raise ValidationError(_form_errors(form))
            recalls.recall_snooze(recall=recall, until=form.cleaned_data["until"], actor=request.user)
            messages.success(request, f"{recall.patient}: called again from {form.cleaned_data['until']:%a %d %b}.")
    except ValidationError as error:
        messages.error(request, f"Not saved: {' '.join(error.messages)}")
    return redirect("staff:recalls")


@staff_view("booking.add_series")
def session_fill(request: HttpRequest, session_id: int) -> HttpResponse:
    """A cancelled session's chair time and the waitlist: the patients for whom it keeps every
    rule, best-ranked first, each booked with one click (after a call) or offered it by text; and
    the offers the tick or staff made of it, with their state."""
    session = get_object_or_404(selectors.sessions_for(request.user), pk=session_id)
    board = _board_url(session.clinic_id, session.clinic.local(session.starts_at).date())
    if session.status != Session.Status.CANCELLED or session.starts_at <= timezone.now():
        messages.info(request, "Only the time of a cancelled session still to come can be filled from the waitlist.")
        return redirect(board)
    opening = waitlist.opening_of(session=session)
    if request.method == "POST":
        chosen = request.POST.get("entry", "")
        wanted = int(chosen) if chosen.isdigit() and len(chosen) < 12 else 0
        entry = get_object_or_404(selectors.waitlist_for(request.user), pk=wanted)
        if request.POST.get("action") == "offer":
            if opening is None:
                messages.error(request, "Not offered: this time is no longer open.")
            else:
                with _refusals_shown(request, "Not offered"):
                    made = offers.offer_by_hand(opening=opening, entry=entry, actor=request.user)
                    until = session.clinic.local(made.expires_at)
                    messages.success(request, f"{entry.patient} is offered the time until {until:%H:%M}.")
            return redirect("staff:session-fill", session.pk)
        with _refusals_shown(request, "Not booked"):
            series = waitlist.waitlist_fill(
                entry=entry, starts_at=session.starts_at, chair=session.chair, actor=request.user, opening=opening
            )
            messages.success(request, f"{entry.patient} booked from the waitlist: {series.protocol}.")
            return redirect(board)
    filled = (
        Opening.objects.filter(freed_by=session, starts_at=session.starts_at, status=Opening.Status.FILLED)
        .select_related("filled_series__patient", "filled_series__protocol")
        .first()
    )
    candidates = (
        []
        if filled
        else waitlist.waitlist_candidates(clinic=session.clinic, starts_at=session.starts_at, chair=session.chair)
    )
    made = Offer.objects.filter(opening__freed_by=session).select_related("patient", "entry__protocol")
    context = {"session": session, "candidates": candidates, "opening": opening, "offers": made, "filled": filled}
    return _render(request, "staff/fill.html", context, section="waitlist")


@require_POST
@staff_view("booking.change_patient")
def patient_contact(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Phone, email, language, zone and channels, edited where staff see them; the change is on
    the audit trail (sessions.audit tracks Patient) and the next message goes to the new details."""
    found = get_object_or_404(selectors.patients_for(request.user).select_related("clinic"), pk=patient_id)
    form = forms.ContactForm(request.POST, instance=found)
    if form.is_valid():
        form.save()
        messages.success(request, f"{found}: contact details saved.")
    else:
        messages.error(request, f"Not saved: {_form_errors(form)}")
    return redirect(reverse("staff:patient", args=[found.pk]) + "#contact")


@require_POST
@staff_view("booking.change_patient")
def patient_note(request: HttpRequest, patient_id: int) -> HttpResponse:
    found = get_object_or_404(selectors.patients_for(request.user), pk=patient_id)
    try:
        services.patient_note_add(patient=found, text=request.POST.get("text", ""), actor=request.user)
    except ValidationError as error:
        messages.error(request, f"Not saved: {' '.join(error.messages)}")
    else:
        messages.success(request, "Note saved.")
    return redirect(reverse("staff:patient", args=[found.pk]) + "#notes")


@require_POST
@staff_view("booking.confirm_session")
def session_send_link(request: HttpRequest, session_id: int) -> HttpResponse:
    """The patient's link to this visit, sent again by text and email, planned like any notice."""
    session = get_object_or_404(selectors.sessions_for(request.user).select_related("patient", "clinic"), pk=session_id)
    if not session.is_upcoming:
        messages.error(request, "Not sent: the link is for visits still to come.")
    else:
        planned = planning.link_send_again(session=session, actor=request.user)
        if planned:
            by = " and ".join("text" if m.channel == "sms" else "email" for m in planned)
            messages.success(request, f"{session.patient}: the link to session {session.number} goes by {by}.")
        else:
            messages.error(request, f"Not sent: {session.patient} takes neither texts nor email.")
    return redirect(reverse("staff:patient", args=[session.patient_id]) + f"#series-{session.series_id}")


@require_POST
@staff_view("booking.cancel_session")
def series_cancel(request: HttpRequest, series_id: int) -> HttpResponse:
    series = get_object_or_404(
        within_clinics(Series.objects.select_related("patient", "protocol"), request.user), pk=series_id
    )
    form = forms.SeriesCancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not cancelled: {_form_errors(form)}")
    elif series.status != Series.Status.ACTIVE:
        messages.error(request, f"Not cancelled: the series is {series.get_status_display().lower()}.")
    else:
        services.series_cancel(
            series=series, reason=form.cleaned_data["reason"], via=Session.Channel.STAFF, actor=request.user
        )
        messages.success(request, f"{series.patient}: {series.protocol} cancelled, with every session still to come.")
    return redirect(reverse("staff:patient", args=[series.patient_id]) + f"#series-{series.pk}")


def _session_actions(request: HttpRequest) -> dict[str, bool]:
    """Asked once per page, not once per session row in the template."""
    return {
        action: request.user.has_perm(f"booking.{permission}")
        for action, permission in (
            ("mark", "mark_attendance"), ("confirm", "confirm_session"), ("move", "move_session"),
            ("cancel", "cancel_session"),
        )
    }  # fmt: skip


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
            messages.success(request, f"{created} registered, MRN {created.external_id}. Now book their series.")
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
    # From a recall's "Book booster": the booster already chosen.
    wanted = request.GET.get("protocol", "")
    initial = {"protocol": int(wanted)} if wanted.isdigit() and len(wanted) < 12 else {}
    form = forms.SeriesForm(request.POST or None, clinic=patient.clinic, initial=initial)
    plan = None
    if request.method == "POST" and form.is_valid():
        booking = {
            "patient": patient,
            "protocol": form.cleaned_data["protocol"],
            "chair": form.cleaned_data["chair"],
            "override_reason": form.cleaned_data["override_reason"],
        }
        if form.cleaned_data["mode"] == "times":
            booking["starts"] = form.cleaned_data["starts"]
        else:
            booking.update(first_start=form.cleaned_data["first_start"], weekdays=form.cleaned_data["weekdays"])
        if request.POST.get("action") == "book":
            # Times typed under "Change a day or time" but not previewed are not booked silently.
            typed = [] if form.cleaned_data["mode"] == "times" else request.POST.getlist("start")
            series = _book_as_previewed(request, booking, form.cleaned_data["plan"], typed)
            if series is not None:
                first = patient.clinic.local(series.sessions.order_by("number").first().starts_at)
                messages.success(request, f"Booked {series.protocol} for {patient} from {first:%a %d %b %H:%M}.")
                return redirect("staff:patient", patient_id=patient.pk)
        with _refusals_shown(request, "No preview", form):
            plan = _preview(booking, services.series_plan(**booking))
            if not plan["bookable"] and not plan["duplicate"] and "first_start" in booking:
                # The nearest first starts from which the whole series fits: one click to preview each.
                starts = services.series_plan_alternatives(
                    patient=patient, protocol=booking["protocol"], first_start=booking["first_start"],
                    chair=booking["chair"], weekdays=booking["weekdays"],
                )  # fmt: skip
                plan["alternatives"] = [patient.clinic.local(start) for start in starts]
    return _render(request, "staff/book_series.html", {"patient": patient, "form": form, "plan": plan}, section="book")


def _book_as_previewed(request: HttpRequest, booking: dict, previewed: str, typed: list[str]) -> Series | None:
    """Book only what the scheduler last saw: with no preview, or when the fields or the calendar
    changed since, or a time typed in the preview's inputs that was not previewed, nothing is
    booked and the page shows the plan as it stands now."""
    if not previewed:
        messages.error(request, "Not booked: preview the series first, then book what the preview shows.")
        return None
    zone = booking["patient"].clinic.zone
    with _refusals_shown(request, "Not booked"):
        try:
            with transaction.atomic():
                series = services.series_book(**booking, actor=request.user, via=Session.Channel.STAFF)
                sessions = list(series.sessions.order_by("number").values_list("number", "chair_id", "starts_at"))
                if forms.plan_signature(sessions) != previewed:
                    raise _PlanChanged
                if typed and typed != [f"{starts.astimezone(zone):%Y-%m-%dT%H:%M}" for _, _, starts in sessions]:
                    raise _TimesTyped
            return series
        except _PlanChanged:
            messages.error(request, "Not booked: the sessions changed since the preview. Check this preview and book.")
        except _TimesTyped:
            messages.error(
                request, "Not booked: a day or time was changed under 'Change a day or time'. "
                "Press 'Preview these times' to check it, then book.",
            )  # fmt: skip
    return None


class _TimesTyped(Exception):
    """Raised to roll back a booking whose preview inputs hold times the preview did not check."""


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
            "why": _conflict_detail(p.conflict, p.number),
        }
        for p in planned
    ]
    unplaced = list(range(len(rows) + 1, protocol.session_count + 1))
    bookable = not unplaced and all(p.conflict is None for p in planned)
    duplicate = any(p.conflict is not None and p.conflict.code == "series_duplicate" for p in planned)
    signature = forms.plan_signature([(p.number, p.slot.chair_id, p.slot.starts_at) for p in planned if p.slot])
    return {
        "rows": rows, "unplaced": unplaced, "bookable": bookable, "protocol": protocol, "duplicate": duplicate,
        "signature": signature if bookable else "", "mode": "times" if "starts" in booking else "",
    }  # fmt: skip


def _conflict_detail(conflict: BookingConflict | None, number: int) -> str:
    """A refusal's detail without the "Session N: " that its preview row already says."""
    if conflict is None:
        return ""
    return booking_selectors.conflict_explained(conflict).removeprefix(f"Session {conflict.session_number or number}: ")


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
    context = {"page": page, "waiting": selectors.texts_waiting_for(request.user)}
    return _render(request, "staff/outbox.html", context, section="outbox")


@staff_view("booking.view_reports")
def reports(request: HttpRequest) -> HttpResponse:
    """A clinic's figures over chosen days; `?csv=<table>` downloads that table's rows."""
    clinics = clinics_for(request.user)
    params = request.GET.copy()
    if not params.get("clinic"):
        first = clinics.first()
        params["clinic"] = str(first.pk) if first else ""
    form = forms.ReportForm(params, clinics=clinics)
    if not form.is_valid():
        return _render(request, "staff/reports.html", {"form": form}, section="reports", status=400)
    data = form.cleaned_data
    # The days counted, also where the defaults chose them: the form shows them and the CSV
    # links keep them, so a download made tomorrow holds what the page showed today.
    params["first"], params["last"] = data["first"].isoformat(), data["last"].isoformat()
    form.data = params
    scope = report_figures.Scope(
        clinic=data["clinic"], first=data["first"], last=data["last"], protocol=data["protocol"],
        weekday=data["weekday"], hour=data["hour"],
    )  # fmt: skip
    wanted = request.GET.get("csv")
    if wanted is not None:
        table = report_page.table_named(scope, wanted)
        if table is None:
            return HttpResponse(f"csv: no table named {wanted[:40]!r}", status=400, content_type="text/plain")
        return report_page.csv_response(table, scope)
    report = report_figures.report_build(scope=scope)
    context = {"form": form, "report": report, "tiles": report_page.tiles(report),
               "sections": report_page.sections(report), "query": params.urlencode(),
               "scope_text": report_page.scope_text(scope)}  # fmt: skip
    return _render(request, "staff/reports.html", context, section="reports")


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

"""The patient link page `/r/<token>`: GET and HEAD show the session (and a re-flow's new times
before it is made), POST confirms, moves, re-flows or cancels.

GET and HEAD never change anything: link previewers (Slack, WhatsApp, iMessage…) open every
link in a text. Every bad case of token (unknown, tampered, session over) gets one neutral page,
so a guesser learns nothing of which it was.

Limits, per minute and per REMOTE_ADDR (behind a reverse proxy it must hold the patient's
address, not the proxy's): every request counts against its address, checked before the database
is asked, so a flood costs one Redis round trip a request; a bad token also counts against its
address and, once that is over its limit, is answered 429 instead of 404; a valid link counts its
posts against itself.

A valid token is served even while its address is over the bad-token limit. One address is often
many people (a clinic's Wi-Fi, a carrier's NAT), and a neighbour's typos or a broken link
previewer must not lock a patient out of their visit. Serving it gives a guesser nothing worth
having: a token is 72 random bits, so even a guesser allowed every request of the per-address
limit, among a million live links, would wait tens of millions of years for one hit. The limits
shed floods; the token's entropy is what keeps a link from being guessed.
"""

from collections.abc import Callable
from datetime import date, datetime
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.utils import timezone
from django.utils.decorators import decorator_from_middleware
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sessions.clock import local_date
from sessions.models import Clinic, Protocol, Session
from sessions.services import ReflowStep

from .links import link_owner, token_hash
from .owner_views import owner_act, owner_page
from .patient_actions import (
    LinkRefused,
    link_cancel,
    link_confirm,
    link_may_act,
    link_may_cancel,
    link_may_wait,
    link_move,
    link_page_session,
    link_reflow,
    link_reflow_preview,
    link_reflow_slots_by_day,
    link_series_visits,
    link_slots_by_day,
    link_waitlist_join,
)
from .patient_text import (
    LINK_FLASH,
    day_choices,
    day_label,
    in_language,
    page_language,
    phone_text,
    time_text,
    when_label,
    when_text,
)
from .ratelimit import rate_hit, rate_hit_and_peek

# The token is in the URL: no Referer may carry it anywhere, no cache may keep the page, no
# search engine may list it. The CSP also holds the page to its promise of no scripts and no
# third-party assets.
PRIVATE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store, private",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
# What the page says when the link cannot do what was asked ({phone} is the clinic's).
_REFUSALS = {
    "driver_missing": _("Please tick the box to tell us you have a driver to take you home."),
    "move_pick": _("Please choose one of the times shown."),
    "move_taken": _("That time was just taken. Please pick another."),
    "move_too_soon": _("That time is too soon to choose here. Please pick a later one, or call {phone}."),
    "reflow_failed": _("Your later visits cannot all fit around that time. Please pick another, or call {phone}."),
    "cancel_call": _("To cancel this visit now, please call {phone}."),
    "not_possible": _("That could not be done. Please call {phone}."),
    "waitlist_none": _("Your visit is already as soon as can be booked here. Questions? Call {phone}."),
}
# Refusals tied to a field of the form on screen: shown with it, with the status that says why.
_FORM_ERRORS = {
    "driver_missing": ("", 400),
    "move_pick": ("move", 400),
    "move_taken": ("move", 409),
    "move_too_soon": ("move", 409),
    "reflow_failed": ("move", 409),
}


class _NoReferrerCsrf(CsrfViewMiddleware):
    """Django's CSRF check for a page sent with Referrer-Policy: no-referrer. Browsers post such a
    page's forms with `Origin: null` and no Referer, which the stock check refuses (the Referer on
    HTTPS only). The form's token must still match the CSRF cookie, and an Origin that names
    another site is still refused; where a post came from adds nothing more here, since whoever
    can build a post to a link already holds the link."""

    def _origin_verified(self, request: HttpRequest) -> bool:
        return request.META["HTTP_ORIGIN"] == "null" or super()._origin_verified(request)

    def _check_referer(self, request: HttpRequest) -> None:
        if "HTTP_REFERER" in request.META:
            super()._check_referer(request)


_csrf_protect = decorator_from_middleware(_NoReferrerCsrf)


def _private(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        for name, value in PRIVATE_HEADERS.items():
            response[name] = value
        return response

    return wrapper


@csrf_exempt  # from the site-wide check only: _csrf_protect checks this view's posts
@_private
@require_http_methods(["GET", "HEAD", "POST"])
@_csrf_protect
def patient_link(request: HttpRequest, token: str) -> HttpResponse:
    address = request.META.get("REMOTE_ADDR", "")
    within, guessing = rate_hit_and_peek(
        f"ip:{address}",
        limit=settings.LINK_RATE_PER_IP,
        peek=f"bad:{address}",
        peek_limit=settings.LINK_RATE_BAD_TOKENS_PER_IP,
    )
    if not within:
        return _neutral(request, status=429)
    now = timezone.now()
    session = link_page_session(token=token, now=now)
    owner = link_owner(token=token) if session is None else None
    if owner is not None:
        # A waitlist offer's or a booster recall's link (notifications/owner_views.py).
        if request.method != "POST":
            return owner_page(request, owner, now)
        if not rate_hit(f"post:{token_hash(token)}", limit=settings.LINK_RATE_POSTS_PER_TOKEN):
            return _neutral(request, status=429)
        return owner_act(request, owner, now, _refusal)
    if session is None:
        # An address already over its limit stays over for the window: no need to count on.
        refused = guessing or not rate_hit(f"bad:{address}", limit=settings.LINK_RATE_BAD_TOKENS_PER_IP)
        return _neutral(request, status=429 if refused else 404)
    if request.method != "POST":
        return _page(
            request, session, now, step=request.GET.get("step", ""), starts_at=request.GET.get("starts_at", "")
        )
    # Keyed by the token's hash: the cache never holds a working link.
    if not rate_hit(f"post:{token_hash(token)}", limit=settings.LINK_RATE_POSTS_PER_TOKEN):
        return _neutral(request, status=429)
    return _act(request, session, now)


def _act(request: HttpRequest, session: Session, now: datetime) -> HttpResponse:
    language, keep = page_language(request, session.patient)
    page = f"{request.path}?{keep}" if keep else request.path
    with in_language(language):
        text = _act_in_language(request, session, now, language)
    if isinstance(text, HttpResponse):
        return text
    # 303: the browser follows with a GET, so a refresh shows the page instead of posting again.
    return HttpResponseRedirect(page, status=303)


def _act_in_language(request: HttpRequest, session: Session, now: datetime, language: str) -> HttpResponse | None:
    """Do what the post asks and flash what came of it; a response where the page must show again."""
    phone = phone_text(session.clinic.phone)
    action = request.POST.get("action", "")
    try:
        if action == "confirm":
            done = link_confirm(session=session, driver=request.POST.get("driver") == "yes", now=now)
            text = (
                gettext("Thank you. Your visit is confirmed.")
                if done
                else gettext("This visit was already confirmed. Nothing has changed.")
            )
        elif action == "move":
            moved = link_move(session=session, starts_at=request.POST.get("starts_at", ""), now=now)
            when = when_text(moved.starts_at.astimezone(moved.clinic.zone), language)
            text = gettext("Your visit is now {when}. Please confirm the new time.").format(when=when)
        elif action == "reflow":
            moved = link_reflow(session=session, starts_at=request.POST.get("starts_at", ""), now=now)
            when = when_text(moved.starts_at.astimezone(moved.clinic.zone), language)
            text = gettext("Your visit is now {when}. Your later visits have new times too: see them below.").format(
                when=when
            )
        elif action == "waitlist":
            joined = link_waitlist_join(session=session, now=now)
            text = (
                gettext("We will let you know if an earlier time frees up.")
                if joined
                else gettext("You are already on the list for an earlier time.")
            )
        elif action == "cancel":
            link_cancel(session=session, now=now)
            text = gettext("Your visit is cancelled. To book a new time, please call {phone}.").format(phone=phone)
        else:
            return None
    except LinkRefused as refused:
        if refused.reason in _FORM_ERRORS:
            step, status = _FORM_ERRORS[refused.reason]
            return _page(request, session, now, step=step, error=refused.reason, status=status)
        messages.error(request, _refusal(refused.reason, phone), extra_tags=LINK_FLASH)
    else:
        messages.success(request, text, extra_tags=LINK_FLASH)
    return None


def _refusal(reason: str, phone: str) -> str:
    return str(_REFUSALS.get(reason, _REFUSALS["not_possible"])).format(phone=phone)


def _page(
    request: HttpRequest,
    session: Session,
    now: datetime,
    *,
    step: str,
    starts_at: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    language, keep = page_language(request, session.patient)
    with in_language(language):
        context, status = _page_context(request, session, now, language, keep, step, starts_at, error, status)
        return render(request, "patient/page.html", context, status=status)


def _page_context(
    request: HttpRequest,
    session: Session,
    now: datetime,
    language: str,
    keep: str,
    step: str,
    starts_at: str,
    error: str,
    status: int,
) -> tuple[dict, int]:
    clinic, protocol = session.clinic, session.series.protocol
    phone = phone_text(clinic.phone)
    today = local_date(now, clinic.zone)
    starts, ends = session.starts_at.astimezone(clinic.zone), session.ends_at.astimezone(clinic.zone)
    may_act = link_may_act(session=session, now=now)
    context = {
        "lang": language,
        # Where the page's links and forms go: its own path, keeping a language chosen on it.
        "page_url": f"{request.path}?{keep}" if keep else request.path,
        "step_query": f"{keep}&" if keep else "",
        "keep_lang": language if keep else "",
        "clinic_name": clinic.sender_name,
        "address": clinic.address,
        "phone": phone,
        "phone_href": f"tel:{clinic.phone}",
        "visit_name": protocol.patient_name_in(language),
        "visit_count": _count(session.number, protocol),
        "day": day_label(starts.date(), language, today=today),
        "hours": gettext("{start} to {end}").format(start=time_text(starts, language), end=time_text(ends, language)),
        "other_zone": session.patient.zone.key != clinic.zone.key,
        "status": session.status,
        "driver_required": protocol.driver_required,
        "driver_confirmed": session.driver_confirmed,
        "may_act": may_act,
        "may_cancel": link_may_cancel(session=session, now=now),
        "on_waitlist": may_act and session.waitlist_waiting,  # read with the link (links.link_session)
        "may_wait": link_may_wait(session=session, now=now),
        "preparation": _preparation(protocol),
        "instructions": protocol.instructions_in(language),
        "flash": [message for message in messages.get_messages(request) if LINK_FLASH in message.tags.split()],
        "error": _refusal(error, phone) if error else "",
        "step": step if step in ("move", "reflow") and may_act else "",
    }
    if context["step"] == "reflow":
        try:
            steps = link_reflow_preview(session=session, starts_at=starts_at, now=now)
        except LinkRefused as refused:
            context.update(step="move", error=_refusal(refused.reason, phone))
            status = _FORM_ERRORS.get(refused.reason, ("", 409))[1]
        else:
            context["starts_at"] = starts_at
            context["steps"] = _reflow_lines(steps, clinic, protocol, language, today)
    if context["step"] == "move":
        context["when_now"] = gettext("Your visit is now {when}.").format(when=when_text(starts, language))
        context["days"] = day_choices(link_slots_by_day(session=session, now=now), clinic.zone, language, today)
        context["reflow_days"] = day_choices(
            link_reflow_slots_by_day(session=session, now=now), clinic.zone, language, today
        )
    if not context["step"]:
        context["visits"] = [
            (
                _count(visit.number, protocol),
                when_label(visit.starts_at.astimezone(clinic.zone), language, today=today),
            )
            for visit in link_series_visits(session=session, now=now)
        ]
    return context, status


def _count(number: int, protocol: Protocol) -> str:
    return gettext("Visit {number} of {count}").format(number=number, count=protocol.session_count)


def _reflow_lines(
    steps: list[ReflowStep], clinic: Clinic, protocol: Protocol, language: str, today: date
) -> list[tuple[str, str, bool]]:
    """(visit k of n, its time after the re-flow, whether that time is new) per visit it touches."""
    lines = []
    for step in steps:
        assert step.slot is not None  # link_reflow_preview refuses a plan with a visit left out
        when = when_label(step.slot.starts_at.astimezone(clinic.zone), language, today=today)
        lines.append((_count(step.number, protocol), when, step.changes))
    return lines


def _preparation(protocol: Protocol) -> list[str]:
    steps = []
    if protocol.fasting_hours:
        steps.append(
            ngettext(
                "Do not eat for {hours} hour before your visit.",
                "Do not eat for {hours} hours before your visit.",
                protocol.fasting_hours,
            ).format(hours=protocol.fasting_hours)
        )
    if protocol.driver_required:
        steps.append(gettext("Arrange for someone to drive you home."))
    if protocol.no_driving_hours:
        steps.append(
            ngettext(
                "Do not drive for {hours} hour afterwards.",
                "Do not drive for {hours} hours afterwards.",
                protocol.no_driving_hours,
            ).format(hours=protocol.no_driving_hours)
        )
    return steps


def _neutral(request: HttpRequest, *, status: int) -> HttpResponse:
    """One page for every token that opens nothing, and for too many tries: it must not tell a
    guesser which it was, so it shows nothing of any clinic or session."""
    response = render(request, "patient/neutral.html", status=status)
    if status == 429:
        response["Retry-After"] = str(settings.LINK_RATE_WINDOW_SECONDS)
    return response

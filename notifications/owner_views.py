"""The link page of a waitlist offer or a booster recall: `/r/<token>` as every link, served by
patient_views.patient_link (its limits, private headers and CSRF check) when the token opens no
session. GET shows, POST acts and redirects (303) back to the page."""

from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext

from sessions.clock import local_date
from sessions.models import Offer, Recall
from sessions.waitlist import offer_accept, offer_decline

from .owner_actions import (
    link_recall_book,
    link_recall_not_now,
    link_recall_open,
    link_recall_slots_by_day,
    offer_state,
)
from .patient_actions import LinkRefused
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


def owner_page(request: HttpRequest, owner: Offer | Recall, now: datetime, *, status: int = 200) -> HttpResponse:
    language, keep = page_language(request, owner.patient)
    with in_language(language):
        context = _context(request, owner, now, language, keep)
        template = "patient/offer.html" if isinstance(owner, Offer) else "patient/recall.html"
        return render(request, template, context, status=status)


def owner_act(request: HttpRequest, owner: Offer | Recall, now: datetime, refusal) -> HttpResponse:
    language, keep = page_language(request, owner.patient)
    action = request.POST.get("action", "")
    with in_language(language):
        try:
            text = (
                _offer_act(owner, action, now, language)
                if isinstance(owner, Offer)
                else _recall_act(owner, action, request.POST.get("starts_at", ""), now, language)
            )
        except LinkRefused as refused:
            messages.error(request, refusal(refused.reason, phone_text(owner.clinic.phone)), extra_tags=LINK_FLASH)
        else:
            if text:
                messages.success(request, text, extra_tags=LINK_FLASH)
    page = f"{request.path}?{keep}" if keep else request.path
    return HttpResponseRedirect(page, status=303)


def _offer_act(offer: Offer, action: str, now: datetime, language: str) -> str:
    if action == "accept":
        answer = offer_accept(offer=offer, now=now)
        if answer.outcome == "accepted":
            return gettext("It is yours. We will send you the details by text or email.")
        return ""  # the page says what became of the time
    if action in ("decline", "leave"):
        offer_decline(offer=offer, leave=action == "leave", now=now)
        if action == "leave":
            return gettext("You are off the list. We will not offer you times any more.")
        return gettext("Thank you. You stay on the list for another time.")
    return ""


def _recall_act(recall: Recall, action: str, starts_at: str, now: datetime, language: str) -> str:
    if action == "book":
        series = link_recall_book(recall=recall, starts_at=starts_at, now=now)
        first = series.sessions.order_by("starts_at").first()
        when = when_text(first.starts_at.astimezone(recall.clinic.zone), language)
        return gettext("Booked: {when}. We will send you the details by text or email.").format(when=when)
    if action == "not_now":
        link_recall_not_now(recall=recall, now=now)
        return gettext("Thank you. We will ask you again in two weeks.")
    return ""


def _context(request: HttpRequest, owner: Offer | Recall, now: datetime, language: str, keep: str) -> dict:
    clinic = owner.clinic
    today = local_date(now, clinic.zone)
    context = {
        "lang": language,
        "page_url": f"{request.path}?{keep}" if keep else request.path,
        "clinic_name": clinic.sender_name,
        "address": clinic.address,
        "phone": phone_text(clinic.phone),
        "phone_href": f"tel:{clinic.phone}",
        "flash": [message for message in messages.get_messages(request) if LINK_FLASH in message.tags.split()],
    }
    if isinstance(owner, Offer):
        starts = owner.opening.starts_at.astimezone(clinic.zone)
        state = offer_state(offer=owner, now=now)
        context.update(
            state=state.state,
            waiting=state.waiting,
            visit_name=owner.entry.protocol.patient_name_in(language),
            day=day_label(starts.date(), language, today=today),
            hours=time_text(starts, language),
            until=when_label(owner.expires_at.astimezone(clinic.zone), language, today=today),
        )
        return context
    days = link_recall_slots_by_day(recall=owner, now=now)
    context.update(
        open=link_recall_open(recall=owner),
        booked=owner.status == Recall.Status.BOOKED,
        visit_name=owner.protocol.patient_name_in(language),
        due=day_label(max(owner.next_on, today), language, today=today),
        days=day_choices(days, clinic.zone, language, today),
    )
    return context

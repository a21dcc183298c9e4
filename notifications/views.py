"""Twilio's webhooks. Each request must carry a valid X-Twilio-Signature for the public URL."""

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .inbound import Incoming, inbound_handle
from .sending import message_record_status
from .transports.sms import signature_valid, twiml_reply

log = logging.getLogger(__name__)


def twilio_signature_valid(request: HttpRequest) -> bool:
    """Checked against PUBLIC_BASE_URL, not the Host header: behind a proxy the request Django
    sees is not the one Twilio signed, and a forged Host must not help a forger."""
    url = settings.PUBLIC_BASE_URL.rstrip("/") + request.get_full_path()
    return signature_valid(url=url, params=request.POST, signature=request.headers.get("X-Twilio-Signature", ""))


@csrf_exempt  # Twilio cannot hold a CSRF token; the signature stands in for it.
@require_POST
def sms_status(request: HttpRequest) -> HttpResponse:
    if not twilio_signature_valid(request):
        log.warning("status callback refused: bad signature")
        return HttpResponseForbidden("invalid signature")
    raw_id = request.GET.get("m", "")
    known = message_record_status(
        message_id=int(raw_id) if raw_id.isdigit() and len(raw_id) < 18 else None,
        provider_id=request.POST.get("MessageSid", "")[:64],
        status=request.POST.get("MessageStatus", ""),
        error_code=request.POST.get("ErrorCode", ""),
    )
    if not known:
        log.info("status callback for an unknown message")
    return HttpResponse(status=200)


@csrf_exempt  # as above: the signature is the proof
@require_POST
def sms_inbound(request: HttpRequest) -> HttpResponse:
    if not twilio_signature_valid(request):
        log.warning("inbound text refused: bad signature")
        return HttpResponseForbidden("invalid signature")
    incoming = Incoming(
        sid=request.POST.get("MessageSid", "")[:64],
        from_number=request.POST.get("From", "")[:32],
        to_number=request.POST.get("To", "")[:32],
        body=request.POST.get("Body", "")[:1600],
    )
    reply = inbound_handle(incoming=incoming) if incoming.sid and incoming.from_number else None
    return HttpResponse(twiml_reply(reply), content_type="application/xml")

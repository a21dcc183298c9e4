from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ClientAddressMiddleware:
    """Behind TRUSTED_PROXY_HOPS proxies, the client is the address that many entries from the
    right of X-Forwarded-For: entries further left are whatever the client chose to send."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        hops = settings.TRUSTED_PROXY_HOPS
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if hops and len(forwarded) >= hops:
            request.META["REMOTE_ADDR"] = forwarded[-hops]
        return self.get_response(request)

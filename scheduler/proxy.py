from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ClientAddressMiddleware:
    """Behind TRUSTED_PROXY_HOPS proxies, the client is the address that many entries from the
    right of X-Forwarded-For: entries further left are whatever the client chose to send."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if address := client_address(request):
            request.META["REMOTE_ADDR"] = address
        return self.get_response(request)


def client_address(request: HttpRequest) -> str:
    """The client's address as the middleware sets it. Also django-axes' AXES_CLIENT_IP_CALLABLE:
    asking again gives the same answer, since X-Forwarded-For is left as it came."""
    hops = settings.TRUSTED_PROXY_HOPS
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")

from collections.abc import Callable

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from .two_factor import Step, second_factor_step

GATED_NAMESPACES = {"staff", "admin"}
# The pages a half-signed-in user needs: to finish signing in, or to sign out.
OPEN_VIEWS = {"staff:login", "staff:logout", "staff:verify", "staff:two-factor", "admin:login", "admin:logout"}
STEP_PAGES = {Step.VERIFY: "staff:verify", Step.SET_UP: "staff:two-factor"}


class SecondFactorMiddleware:
    """After django-otp's OTPMiddleware: a user who signed in with a password but still owes a
    code (or must first set up an app) is sent to that step from every staff and admin page.
    Anywhere else, such as the API's session sign-in, the session counts as not signed in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable, args: tuple, kwargs: dict) -> HttpResponse | None:
        match = request.resolver_match
        if match.view_name in OPEN_VIEWS:
            return None
        step = second_factor_step(user=request.user)
        if step is None:
            return None
        if match.namespace in GATED_NAMESPACES:
            return redirect_to_login(request.get_full_path(), reverse(STEP_PAGES[step]))
        request.user = AnonymousUser()
        return None

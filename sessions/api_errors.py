"""API errors: a booking rule refused → 409 with its code and rule; bad input → 400 naming the field."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from .calendar import BookingConflict
from .selectors import conflict_explained


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, BookingConflict):
        return Response({**exc.as_dict(), "detail": conflict_explained(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(detail=as_serializer_error(exc))
    return drf_exception_handler(exc, context)


@csrf_exempt  # as DRF's views are: a POST to a wrong path is told 404, not "CSRF cookie not set"
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Any other path under /api/, such as /api/sessions/0.5/: a client of the API gets the JSON
    404 that an unknown id gets, not Django's HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)

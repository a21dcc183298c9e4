"""REST API of the booking domain: parse, call a service or selector, answer.

Every view reads and changes only the rows of the user's clinics (sessions/access.py): another
clinic's object answers 404, as one that does not exist, and its id in a body is refused (400).
"""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from . import recalls, selectors, services, waitlist
from .access import clinic_ids_for, clinics_for, within_clinics
from .models import Chair, Clinic, Patient, Protocol, Recall, Series, Session, WaitlistEntry
from .serializers import (
    REFLOW_ANSWER,
    CancelSerializer,
    ChairSerializer,
    ClinicSerializer,
    ConfirmSerializer,
    ConflictSerializer,
    MarkSerializer,
    PatientSerializer,
    ProtocolSerializer,
    RecallSerializer,
    RecallSnoozeSerializer,
    ReflowDoneSerializer,
    ReflowPreviewSerializer,
    ReflowSerializer,
    RescheduleSerializer,
    SeriesBookSerializer,
    SeriesPreviewSerializer,
    SeriesSerializer,
    SessionQuerySerializer,
    SessionSerializer,
    SlotQuerySerializer,
    SlotSerializer,
    WaitlistBookSerializer,
    WaitlistCandidateSerializer,
    WaitlistEntrySerializer,
    clinic_instant,
)

CONFLICT = OpenApiResponse(ConflictSerializer, description="A booking rule refused the change.")
PREVIEW = OpenApiParameter("preview", bool, description="1: plan and check, book nothing.")


def _previewing(request: Request) -> bool:
    return request.query_params.get("preview") in ("1", "true")


def _sessions_to_show() -> QuerySet[Session]:
    return Session.objects.select_related("clinic", "series__protocol").prefetch_related("moves")


class RolePermissions(permissions.DjangoModelPermissions):
    """Model permissions, reads included; an action names its own permission in `action_perms`."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request: Request, view) -> bool:
        needed = getattr(view, "action_perms", {}).get(getattr(view, "action", None))
        if needed is None:
            return super().has_permission(request, view)
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(needed))


class ClinicScoped:
    # A view whose rows are those of the requesting user's clinics. (A comment, not a docstring:
    # the schema would take a docstring for every operation's description.)

    def get_queryset(self) -> QuerySet:
        return within_clinics(super().get_queryset(), self.request.user)


class _ConfigViewSet(
    ClinicScoped,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [RolePermissions]


class ClinicViewSet(_ConfigViewSet):
    queryset = Clinic.objects.prefetch_related("opening_hours", "closed_dates", "staffing_blocks")
    serializer_class = ClinicSerializer

    def create(self, request: Request, *args, **kwargs) -> Response:
        if clinic_ids_for(request.user) is not None:
            # The new clinic would be outside the user's own clinics the moment it existed.
            raise PermissionDenied("A user limited to some clinics cannot add a clinic.")
        return super().create(request, *args, **kwargs)


class ChairViewSet(_ConfigViewSet):
    queryset = Chair.objects.all()
    serializer_class = ChairSerializer


class ProtocolViewSet(_ConfigViewSet):
    queryset = Protocol.objects.all()
    serializer_class = ProtocolSerializer


class PatientViewSet(_ConfigViewSet):
    queryset = Patient.objects.all()
    serializer_class = PatientSerializer


class SeriesViewSet(ClinicScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Series.objects.prefetch_related("sessions__moves", "sessions__clinic", "sessions__series__protocol")
    serializer_class = SeriesSerializer
    permission_classes = [RolePermissions]
    action_perms = {
        "create": "booking.add_series",
        "cancel": "booking.cancel_session",
        "reflow": "booking.move_session",
    }

    @extend_schema(
        request=SeriesBookSerializer,
        parameters=[PREVIEW],
        responses={201: SeriesSerializer, 200: SeriesPreviewSerializer, 409: CONFLICT},
    )
    def create(self, request: Request) -> Response:
        """Book a series: every start, or a first start with auto-placement. All sessions or none.

        A second active series of the same protocol for the patient is refused (409
        `series_duplicate` on session 1) unless `override_reason` says why it is needed."""
        form = SeriesBookSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        booking = {
            key: form.validated_data.get(key)
            for key in ("patient", "protocol", "chair", "first_start", "starts", "override_reason", "weekdays")
        }
        if _previewing(request):
            plan = services.series_plan(**booking)
            complete = len(plan) == booking["protocol"].session_count
            body = {"bookable": complete and all(p.conflict is None for p in plan), "sessions": plan}
            return Response(SeriesPreviewSerializer(body).data)
        series = services.series_book(**booking, actor=request.user, via=Session.Channel.API)
        return Response(SeriesSerializer(self.get_queryset().get(pk=series.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CancelSerializer, responses={200: SeriesSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel every session still to come."""
        form = CancelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        reason = form.validated_data["reason"]
        services.series_cancel(series=self.get_object(), reason=reason, via=Session.Channel.API, actor=request.user)
        return Response(SeriesSerializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(
        request=ReflowSerializer,
        parameters=[PREVIEW],
        responses={
            200: OpenApiResponse(
                REFLOW_ANSWER,
                description="With preview: `fits` and the steps, nothing booked. Without: the sessions moved or "
                "booked.",
            ),
            409: CONFLICT,
        },
    )
    @action(detail=True, methods=["post"])
    def reflow(self, request: Request, pk: str) -> Response:
        """Re-flow (rule 11): move a session and re-space the later ones so that every gap keeps the
        protocol, or make good a cancelled or missed session under its number. All or nothing; the
        patient gets one notice of the new times. A session that cannot be placed answers 409 naming it."""
        series = self.get_object()
        form = ReflowSerializer(data=request.data, context={**self.get_serializer_context(), "series": series})
        form.is_valid(raise_exception=True)
        if _previewing(request):
            wanted = {key: form.validated_data.get(key) for key in ("session", "starts_at", "chair")}
            steps = services.series_reflow_plan(**wanted, via=Session.Channel.API)
            body = {"fits": all(step.conflict is None for step in steps), "steps": steps}
            return Response(ReflowPreviewSerializer(body, context={"clinic": series.clinic}).data)
        changed = services.series_reflow(**form.validated_data, via=Session.Channel.API, actor=request.user)
        sessions = _sessions_to_show().filter(pk__in=[s.pk for s in changed]).order_by("number", "starts_at")
        return Response(ReflowDoneSerializer({"sessions": sessions}).data)


class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SessionSerializer
    permission_classes = [RolePermissions]
    action_perms = {
        "reschedule": "booking.move_session",
        "cancel": "booking.cancel_session",
        "confirm": "booking.confirm_session",
        "mark": "booking.mark_attendance",
        # Undo needs the permission of what it takes back, known only once the session is read:
        # a nurse's mark (mark_attendance) or a scheduler's cancel (undo_perms).
        "undo": "booking.view_session",
        "slots": "booking.view_session",
    }
    undo_perms = {Session.Status.CANCELLED: "booking.cancel_session"}

    def get_queryset(self) -> QuerySet[Session]:
        sessions = _sessions_to_show()
        if self.action != "list":
            return within_clinics(sessions, self.request.user)
        query = SessionQuerySerializer(data=self.request.query_params, context=self.get_serializer_context())
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        if "date" in wanted:
            sessions = selectors.sessions_for_day(clinic=wanted["clinic"], day=wanted["date"]).prefetch_related("moves")
        for key in ("clinic", "patient", "series", "status"):
            if key in wanted:
                sessions = sessions.filter(**{key: wanted[key]})
        return within_clinics(sessions, self.request.user).order_by("starts_at", "id")

    @extend_schema(parameters=[SessionQuerySerializer])
    def list(self, request: Request) -> Response:
        """Sessions, filtered by clinic and day (clinic calendar), patient, series or status."""
        return super().list(request)

    @extend_schema(request=RescheduleSerializer, responses={200: SessionSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def reschedule(self, request: Request, pk: str) -> Response:
        """Move the session; only a slot that keeps every booking rule is accepted."""
        session = self.get_object()
        form = RescheduleSerializer(data=request.data, context={**self.get_serializer_context(), "session": session})
        form.is_valid(raise_exception=True)
        services.session_reschedule(session=session, via=Session.Channel.API, actor=request.user, **form.validated_data)
        return self._answer(pk)

    @extend_schema(request=CancelSerializer, responses={200: SessionSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        form = CancelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.session_cancel(
            session=self.get_object(), reason=form.validated_data["reason"], via=Session.Channel.API, actor=request.user
        )
        return self._answer(pk)

    @extend_schema(request=ConfirmSerializer, responses={200: SessionSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str) -> Response:
        form = ConfirmSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.session_confirm(
            session=self.get_object(), via=Session.Channel.API, actor=request.user, **form.validated_data
        )
        return self._answer(pk)

    @extend_schema(request=MarkSerializer, responses={200: SessionSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def mark(self, request: Request, pk: str) -> Response:
        """Attendance on the day: arrived (records chair-in), completed (chair-out) or no_show, at `at`
        when it is entered after the fact, else now."""
        session = self.get_object()
        form = MarkSerializer(data=request.data, context={"session": session})
        form.is_valid(raise_exception=True)
        services.session_mark(session=session, via=Session.Channel.API, actor=request.user, **form.validated_data)
        return self._answer(pk)

    @extend_schema(request=None, responses={200: SessionSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str) -> Response:
        """Take back the last mark or the cancel: completed → arrived, arrived or no-show → booked
        (or confirmed), cancelled → booked where its time is still free. Undoing a cancel needs the
        cancel_session permission; undoing a mark, mark_attendance."""
        session = self.get_object()
        needed = self.undo_perms.get(session.status, "booking.mark_attendance")
        if not request.user.has_perm(needed):
            raise PermissionDenied(f"Undoing a {session.get_status_display().lower()} session needs {needed}.")
        services.session_undo(session=session, expected=session.status, via=Session.Channel.API, actor=request.user)
        return self._answer(pk)

    @extend_schema(parameters=[SlotQuerySerializer], responses={200: SlotSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)  # one short list, not pages
    def slots(self, request: Request, pk: str) -> Response:
        """Open slots the session may move to, each one accepted by reschedule."""
        query = SlotQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = selectors.session_slots(session=self.get_object(), days=query.validated_data["days"])
        return Response(SlotSerializer(found, many=True).data)

    def _answer(self, pk: str) -> Response:
        return Response(SessionSerializer(self.get_queryset().get(pk=pk)).data)


class WaitlistViewSet(ClinicScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = WaitlistEntry.objects.select_related("patient", "protocol", "session")
    serializer_class = WaitlistEntrySerializer
    permission_classes = [RolePermissions]
    action_perms = {
        "create": "booking.add_waitlistentry",
        "remove": "booking.change_waitlistentry",
        "book": "booking.add_series",
        "candidates": "booking.view_waitlistentry",
    }

    def get_queryset(self) -> QuerySet:
        entries = super().get_queryset()
        if self.action == "list":
            status_wanted = self.request.query_params.get("status", WaitlistEntry.Status.WAITING)
            entries = entries.filter(status=status_wanted) if status_wanted in WaitlistEntry.Status.values else entries
        return entries

    def create(self, request: Request) -> Response:
        """Put a patient on the waitlist (sessions/waitlist.py): `protocol` for a new series, or
        `session` for an earlier time for it."""
        form = WaitlistEntrySerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        wish = dict(form.validated_data)
        entry = waitlist.waitlist_join(patient=wish.pop("patient"), actor=request.user, via=Session.Channel.API, **wish)
        return Response(WaitlistEntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: WaitlistEntrySerializer})
    @action(detail=True, methods=["post"])
    def remove(self, request: Request, pk: str) -> Response:
        """Take the entry off the waitlist (a no-op for one no longer waiting)."""
        entry = self.get_object()
        waitlist.waitlist_remove(entry=entry, actor=request.user, via=Session.Channel.API)
        entry.refresh_from_db()
        return Response(WaitlistEntrySerializer(entry).data)

    @extend_schema(request=WaitlistBookSerializer, responses={201: SeriesSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def book(self, request: Request, pk: str) -> Response:
        """Book the waiting patient at a freed time, with every booking rule; 409 `waitlist_closed`
        when the entry no longer waits."""
        entry = self.get_object()
        form = WaitlistBookSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        starts_at = clinic_instant(form.validated_data["starts_at"], entry.clinic, field="starts_at")
        series = waitlist.waitlist_fill(
            entry=entry, starts_at=starts_at, chair=form.validated_data.get("chair"), actor=request.user,
            via=Session.Channel.API,
        )  # fmt: skip
        shown = SeriesViewSet.queryset.get(pk=series.pk)
        return Response(SeriesSerializer(shown).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("session", int, required=True, description="A cancelled session still to come.")],
        responses={200: WaitlistCandidateSerializer(many=True)},
    )
    @action(detail=False, methods=["get"])
    def candidates(self, request: Request) -> Response:
        """Who on the waitlist a cancelled session's chair time fits, best-ranked first."""
        raw = request.query_params.get("session", "")
        session = (
            within_clinics(Session.objects.select_related("clinic", "chair"), request.user)
            .filter(pk=int(raw) if raw.isdigit() and len(raw) < 12 else 0)
            .first()
        )
        if session is None:
            raise ValidationError({"session": "Give the id of a session of your clinics."})
        if session.status != Session.Status.CANCELLED:
            raise ValidationError({"session": "Only a cancelled session frees its chair time."})
        found = waitlist.waitlist_candidates(clinic=session.clinic, starts_at=session.starts_at, chair=session.chair)
        return Response(WaitlistCandidateSerializer(found, many=True).data)


class RecallViewSet(ClinicScoped, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Recall.objects.select_related("clinic", "patient", "protocol")
    serializer_class = RecallSerializer
    permission_classes = [RolePermissions]
    action_perms = {"snooze": "booking.change_recall", "decline": "booking.change_recall"}
    # The open recalls are a short list in calling order, answered whole.
    pagination_class = None

    @extend_schema(responses={200: RecallSerializer(many=True)})
    def list(self, request: Request) -> Response:
        """Open recalls due soon, due or overdue, per clinic of the user, in the order to call."""
        rows = [row for clinic in clinics_for(request.user) for row in recalls.recalls_open(clinic=clinic)]
        states = {row.recall.pk: row.state for row in rows}
        return Response(RecallSerializer([row.recall for row in rows], many=True, context={"states": states}).data)

    @extend_schema(request=RecallSnoozeSerializer, responses={200: RecallSerializer})
    @action(detail=True, methods=["post"])
    def snooze(self, request: Request, pk: str) -> Response:
        """ "Not now": call again on `until`."""
        form = RecallSnoozeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        recall = recalls.recall_snooze(
            recall=self.get_object(), until=form.validated_data["until"], actor=request.user, via=Session.Channel.API
        )
        return Response(RecallSerializer(recall).data)

    @extend_schema(request=None, responses={200: RecallSerializer})
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str) -> Response:
        """The patient does not want the booster: the recall ends."""
        recall = recalls.recall_decline(recall=self.get_object(), actor=request.user, via=Session.Channel.API)
        return Response(RecallSerializer(recall).data)

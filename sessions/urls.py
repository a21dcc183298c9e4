from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
# The spec's paths have no trailing slash (POST /api/sessions/{id}/cancel); accept both forms
# rather than redirect, since a redirected POST loses its body.
router.trailing_slash = "/?"
router.register("clinics", api.ClinicViewSet)
router.register("chairs", api.ChairViewSet)
router.register("protocols", api.ProtocolViewSet)
router.register("patients", api.PatientViewSet)
router.register("series", api.SeriesViewSet)
router.register("sessions", api.SessionViewSet, basename="session")
router.register("waitlist", api.WaitlistViewSet)
router.register("recalls", api.RecallViewSet)

urlpatterns = router.urls

from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash="/?")
router.register("clinics", api.ClinicViewSet)
router.register("chairs", api.ChairViewSet)
router.register("protocols", api.ProtocolViewSet)
router.register("patients", api.PatientViewSet)
router.register("series", api.SeriesViewSet)
router.register("sessions", api.SessionViewSet, basename="session")

urlpatterns = router.urls

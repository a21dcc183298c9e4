from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from sessions.api_errors import api_not_found

from .health import healthz
from .metrics import metrics
from .views import home

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("staff/", include("scheduler.staff.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/", include("sessions.urls")),
    path("api/", include("notifications.api_urls")),
    re_path(r"^api/", api_not_found),
    path("", include("notifications.urls")),
]

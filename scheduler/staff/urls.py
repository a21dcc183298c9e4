from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "staff"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="staff/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("verify/", views.verify, name="verify"),
    path("two-factor/", views.two_factor_setup, name="two-factor"),
    path("board/<int:clinic_id>/", views.board, name="board"),
    path("board/<int:clinic_id>/week/", views.week, name="week"),
    path("sessions/<int:session_id>/mark/", views.session_mark, name="session-mark"),
    path("sessions/<int:session_id>/confirm/", views.session_confirm, name="session-confirm"),
    path("sessions/<int:session_id>/cancel/", views.session_cancel, name="session-cancel"),
    path("sessions/<int:session_id>/move/", views.session_move, name="session-move"),
    path("sessions/<int:session_id>/reflow/", views.session_reflow, name="session-reflow"),
    path("sessions/<int:session_id>/undo/", views.session_undo, name="session-undo"),
    path("sessions/<int:session_id>/send-link/", views.session_send_link, name="session-send-link"),
    path("patients/", views.patients, name="patients"),
    path("patients/<int:patient_id>/", views.patient, name="patient"),
    path("patients/<int:patient_id>/contact/", views.patient_contact, name="patient-contact"),
    path("patients/<int:patient_id>/notes/", views.patient_note, name="patient-note"),
    path("patients/<int:patient_id>/waitlist/", views.patient_waitlist, name="patient-waitlist"),
    path("waitlist/", views.waitlist_page, name="waitlist"),
    path("recalls/", views.recalls_page, name="recalls"),
    path("recalls/<int:recall_id>/answer/", views.recall_answer, name="recall-answer"),
    path("waitlist/<int:entry_id>/remove/", views.waitlist_remove, name="waitlist-remove"),
    path("sessions/<int:session_id>/fill/", views.session_fill, name="session-fill"),
    path("series/<int:series_id>/cancel/", views.series_cancel, name="series-cancel"),
    path("book/", views.book, name="book"),
    path("book/<int:patient_id>/", views.book_series, name="book-series"),
    path("inbox/", views.inbox_page, name="inbox"),
    path("inbox/texts/<int:inbound_id>/handled/", views.inbound_handled, name="inbound-handled"),
    path("inbox/flags/<int:flag_id>/handled/", views.flag_handled, name="flag-handled"),
    path("outbox/", views.outbox, name="outbox"),
    path("reports/", views.reports, name="reports"),
]

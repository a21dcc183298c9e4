"""Query parameters no admin page offers (a NUL byte, which PostgreSQL's text cannot hold) are
refused as a bad lookup, never a server error, on every list: the clinics' and the others'."""

import pytest
from django.contrib.auth.models import User

from tests.staff.builders import client_as

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    [
        "/admin/booking/patient/?q=%00",
        "/admin/booking/session/?status__exact=%00",
        "/admin/booking/auditevent/?action__exact=Ana%00",
        "/admin/notifications/message/?q=%00",
        "/admin/notifications/inboxtext/?inbound__command__exact=%00",
        "/admin/auth/user/?q=%00",
    ],
)
def test_it_answers_a_nul_byte_in_a_list_query_as_a_bad_lookup(query):
    admin = client_as(User.objects.create_superuser("root", "root@example.com", None))

    answer = admin.get(query)

    assert answer.status_code == 302
    assert answer["Location"].endswith("?e=1")

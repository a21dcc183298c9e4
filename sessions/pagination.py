"""Pages of API lists. Its own module: DRF imports the default pagination class while it loads its
generic views, so this module must not import any view."""

from rest_framework.pagination import LimitOffsetPagination


class Pages(LimitOffsetPagination):
    # Without a cap, ?limit=10**30 reaches the database as a LIMIT it cannot hold: a 500.
    max_limit = 1000

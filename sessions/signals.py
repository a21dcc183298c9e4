"""What the booking core tells the rest of the project, sent inside the booking transaction.

`notifications/` listens to plan and withdraw messages atomically with the change; the booking
core never imports it.
"""

from django.dispatch import Signal

# Each is sent with `now`, the moment the booking service acted on, and `via`, the channel it
# came through (Session.Channel: staff, api, link, sms).
# sessions: list[Session]
sessions_booked = Signal()
# session: Session (already moved), previous_starts_at: datetime; in_reflow: True when a re-flow
# moved it (series_reflowed follows, and carries the one notice)
session_moved = Signal()
# session: Session (new status saved), previous_status: str; with_series: True when the whole
# series is being cancelled (series_cancelled follows)
session_status_changed = Signal()
# series: Series, sessions: list[Session] (the ones this cancelled)
series_cancelled = Signal()
# series: Series, sessions: list[Session] (moved or booked as make-up, in number order)
series_reflowed = Signal()

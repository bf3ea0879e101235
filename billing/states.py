"""The subscription record and its rules, as pure functions of the record and the time.

The stored ``state`` is derived from facts, so the same rules serve the periodic ``tick`` (which
persists changes) and the hot path (which must not wait for the tick):

1. ``cancelled`` stays cancelled; an operator's suspension stays until the operator resumes.
2. a lapsed Bitrix24 licence: ``past_due`` until ``grace_until``, then ``suspended``.
3. on trial (``trial_end`` set): ``trial`` until ``trial_end``, then ``suspended``.
4. otherwise ``active``.

Periods are calendar months from midnight UTC on ``billing_day`` (clamped to short months, so a
period anchored on the 31st runs to Feb 28, then to Mar 31).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

OPERATOR = "operator"
TRIAL_ENDED = "trial_ended"
LICENCE_LAPSED = "licence_lapsed"

TRIAL = "trial"
ACTIVE = "active"
PAST_DUE = "past_due"
SUSPENDED = "suspended"
CANCELLED = "cancelled"

SERVED_STATES = (TRIAL, ACTIVE, PAST_DUE)


@dataclass(frozen=True)
class Subscription:
    id: int
    tenant_id: int
    plan_id: int
    state: str
    suspend_reason: str | None
    billing_day: int
    period_start: datetime
    period_end: datetime
    trial_end: datetime | None
    grace_until: datetime | None
    licence_lapsed_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def served(self) -> bool:
        """Whether the tenant's bots answer (quota permitting)."""
        return self.state in SERVED_STATES

    @property
    def on_trial(self) -> bool:
        return self.trial_end is not None


def midnight(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def month_after(start: datetime, billing_day: int) -> datetime:
    """Midnight UTC on ``billing_day`` of the month after ``start`` (clamped to its length)."""
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    day = min(billing_day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, tzinfo=UTC)


def first_period(now: datetime) -> tuple[int, datetime, datetime]:
    """``(billing_day, period_start, period_end)`` for a period that starts today."""
    start = midnight(now)
    return start.day, start, month_after(start, start.day)


def days_of(start: datetime, end: datetime) -> tuple[date, date]:
    """The UTC days ``[first, last)`` a period covers (periods start and end at midnight)."""
    return start.astimezone(UTC).date(), end.astimezone(UTC).date()


def rolled(sub: Subscription, now: datetime) -> Subscription:
    """The subscription with its period moved forward until it contains ``now``."""
    if sub.state == CANCELLED:
        return sub
    start, end = sub.period_start, sub.period_end
    while end <= now:
        start, end = end, month_after(end, sub.billing_day)
    if start == sub.period_start:
        return sub
    return replace(sub, period_start=start, period_end=end)


def derived(sub: Subscription, now: datetime) -> Subscription:
    """The state the facts imply at ``now`` (rules 1-4 above)."""
    if sub.state == CANCELLED or (sub.state == SUSPENDED and sub.suspend_reason == OPERATOR):
        return sub
    state, reason = ACTIVE, None
    if sub.licence_lapsed_at is not None:
        in_grace = sub.grace_until is not None and now < sub.grace_until
        state, reason = (PAST_DUE, None) if in_grace else (SUSPENDED, LICENCE_LAPSED)
    elif sub.trial_end is not None:
        state, reason = (TRIAL, None) if now < sub.trial_end else (SUSPENDED, TRIAL_ENDED)
    if (state, reason) == (sub.state, sub.suspend_reason):
        return sub
    return replace(sub, state=state, suspend_reason=reason)


def effective(sub: Subscription, now: datetime) -> Subscription:
    """Period rolled and state derived: what the subscription is at ``now``."""
    return derived(rolled(sub, now), now)

"""Prometheus metrics of every BitBot process, served at ``/metrics``.

Labels stay low-cardinality on purpose: no tenant, dialog or bot ids (those go to logs).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

EVENTS_ACCEPTED = Counter("bitbot_events_accepted_total", "Bot events queued by the intake")
EVENTS_REJECTED = Counter(
    "bitbot_events_rejected_total", "Bot events the intake refused", ["reason"]
)
QUEUE_LENGTH = Gauge("bitbot_queue_length", "Entries waiting in a queue shard", ["shard"])
QUEUE_LAG = Gauge(
    "bitbot_queue_lag_seconds", "Age of the oldest entry waiting in a queue shard", ["shard"]
)
DEAD_LETTERS = Counter("bitbot_dead_letters_total", "Entries moved to the dead letters", ["cause"])
TURN_SECONDS = Histogram(
    "bitbot_turn_seconds",
    "From receiving an event to its reply being sent",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_SECONDS = Histogram(
    "bitbot_provider_seconds",
    "Duration of one provider call",
    ["provider", "outcome"],
    buckets=LATENCY_BUCKETS,
)
BITRIX24_CALLS = Counter(
    "bitbot_bitrix24_calls_total", "REST calls to portals", ["method", "error"]
)
TOKEN_REFRESHES = Counter("bitbot_token_refreshes_total", "OAuth refreshes", ["outcome"])
RATE_LIMIT_HITS = Counter(
    "bitbot_rate_limit_hits_total", "Times a rate limit made work wait or drop", ["scope"]
)
LIMITER_WAIT_SECONDS = Histogram(
    "bitbot_limiter_wait_seconds",
    "Time spent waiting for a rate limit",
    ["scope"],
    buckets=LATENCY_BUCKETS,
)
QUOTA_BLOCKS = Counter("bitbot_quota_blocks_total", "Turns refused by the plan's quota")
TYPING_DROPPED = Counter(
    "bitbot_typing_dropped_total", "Typing indicators dropped to save the portal's budget"
)
HANDOFFS = Counter(
    "bitbot_handoffs_total",
    "Failed turns handed to a human operator after the fallback text",
    ["outcome"],  # ok | failed | skipped
)

"""Plans, subscriptions, usage metering and quota checks (arrives with the billing issue)."""

__all__: list[str] = []

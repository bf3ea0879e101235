"""The event service: Bitrix24 event intake, the queue consumers, the conversation pipeline."""

from gateway.app import create_gateway_app
from gateway.worker import create_worker_health_app, run_consumers

__all__ = ["create_gateway_app", "create_worker_health_app", "run_consumers"]

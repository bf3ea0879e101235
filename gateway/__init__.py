"""The event service: Bitrix24 event intake, the queue workers, the conversation pipeline."""

from gateway.service import build_worker, create_gateway_app, run_consumers
from gateway.worker import create_worker_health_app

__all__ = ["build_worker", "create_gateway_app", "create_worker_health_app", "run_consumers"]

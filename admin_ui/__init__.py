"""The admin service: marketplace lifecycle, the in-portal UI, the operator console."""

from admin_ui.app import create_admin_app
from admin_ui.operators import create_operator

__all__ = ["create_admin_app", "create_operator"]

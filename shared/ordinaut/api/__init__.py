"""The REST API: ``create_app(settings, clock=...)`` builds the FastAPI application."""

from ordinaut.api.app import create_app

__all__ = ["create_app"]

"""The HTTP front: authenticates the tenant and turns requests into jobs
(docs/api.md#conventions)."""

from anygate.api.app import create_app

__all__ = ["create_app"]

"""The HTTP front: authenticates the tenant and turns requests into jobs (SPEC §1)."""

from anygate.api.app import create_app

__all__ = ["create_app"]

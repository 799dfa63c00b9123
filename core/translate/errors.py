"""The one error translation raises: a request field that has no faithful counterpart.

It is an ``InvalidRequestError`` (400) because the API calls the translators at submit time:
a request that cannot reach its provider intact is refused before it is queued, never
forwarded with the field quietly missing (docs/translation.md).
"""

from __future__ import annotations

from anygate.broker.errors import InvalidRequestError

UNTRANSLATABLE = "untranslatable_field"
INVALID_VALUE = "invalid_value"


class UntranslatableFieldError(InvalidRequestError):
    """``param`` is the field's path in the incoming request, as the client spelled it."""

    default_code = UNTRANSLATABLE

    def __init__(self, param: str, reason: str, *, code: str | None = None) -> None:
        super().__init__(f"{param}: {reason}", param=param, code=code)
        self.reason = reason


def untranslatable(param: str, reason: str) -> UntranslatableFieldError:
    """The field is valid but the other format has nowhere to carry it."""
    return UntranslatableFieldError(param, reason, code=UNTRANSLATABLE)


def invalid(param: str, reason: str) -> UntranslatableFieldError:
    """The field is malformed, so there is nothing well-defined to translate."""
    return UntranslatableFieldError(param, reason, code=INVALID_VALUE)

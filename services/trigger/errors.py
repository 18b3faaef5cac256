"""Trigger errors. Each maps to one HTTP status in ``app.STATUS_FOR`` (and only there)."""

from __future__ import annotations

from transforms.core.errors import TesseraError


class MalformedEventError(TesseraError, ValueError):
    """The request is not an event we can parse; the sender must fix it (HTTP 400)."""


class PayloadTooLargeError(MalformedEventError):
    """The request body is over the size cap (HTTP 413)."""


class UnauthenticatedError(TesseraError, PermissionError):
    """No bearer token, or one that does not verify (HTTP 401)."""


class ForbiddenError(TesseraError, PermissionError):
    """A valid token for a caller that is not allowed (HTTP 403)."""


class StorageUnavailableError(TesseraError, OSError):
    """Storage could not be reached while admitting an object: transient, so the sender
    should retry (HTTP 503). Never raised for a bad object, which is quarantined instead."""


class JobNotFoundError(TesseraError, KeyError):
    """No job with this id (HTTP 404)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "job not found"

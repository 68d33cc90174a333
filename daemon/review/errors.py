"""The review queue's errors: each a stable code and the HTTP status the API answers with.

Messages name job keys (short form), de-identified UIDs and codes only, never PHI.
"""

from __future__ import annotations

from typing import ClassVar

from dxai.configs.errors import PermanentError


class ReviewError(PermanentError):
    """Root of the review queue's errors."""

    code = "review_error"
    status: ClassVar[int] = 400


class ReviewNotFoundError(ReviewError):
    """No held job, or no kept instance, of that key or UID."""

    code = "review_not_found"
    status = 404


class ReviewConflictError(ReviewError):
    """The action does not fit the review's state (decided already, not releasable, stale)."""

    code = "review_conflict"
    status = 409


class ReviewTamperedError(ReviewError):
    """A kept blob does not decrypt under the key (changed, swapped, or another key)."""

    code = "review_tampered"
    status = 500


class ReviewForbiddenError(ReviewError):
    """The signed-in user's role may not do this."""

    code = "review_forbidden"
    status = 403


class ReviewUnavailableError(ReviewError):
    """What the action needs (the destination, the pixel verify) is not available now."""

    code = "review_unavailable"
    status = 503

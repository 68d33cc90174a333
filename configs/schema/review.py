"""The ``review:`` section: where held studies wait, for how long, and who may decide them.

Held instances (their de-identified output and the original a reviewer must see) are kept
AES-GCM encrypted under ``<data_dir>/review/`` with the key in ``key_file`` (created 0600 when
missing; default ``<data_dir>/keys/review.key``).  ``http_port`` set: the review API and web page
listen on ``bind_host`` (0: an ephemeral port, for tests); left out: no listener (the CLI still
works).  Users are named in ``users``, each with a role and a bearer token file (read again on
every request, so a sidecar may rotate it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dxai.configs.schema.base import Section

#: viewer: read only; reviewer: approve, reject, boxes, verify, comments; admin: reviewer +
#: purge and re-identification lookups.
Role = Literal["viewer", "reviewer", "admin"]
UserName = str


class ReviewUser(Section):
    """One reviewer account: its role and the file holding its bearer token."""

    role: Role
    token_file: str = Field(min_length=1)


class ReviewConfig(Section):
    """The review queue of held studies (see docs/review.md)."""

    enabled: bool = Field(
        default=True,
        description="Keep held studies (encrypted) for review; false drops them as before.",
    )
    key_file: str | None = Field(
        default=None, description="AES-256 key (64 hex digits); default <data_dir>/keys/review.key"
    )
    retention_s: float = Field(
        default=30 * 86_400.0,
        gt=0,
        description="A held study not decided this long after it was kept is purged and "
        "concluded block (review_expired); a decided one's manifest is removed this long after.",
    )
    purge_interval_s: float = Field(default=3600.0, gt=0)
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the daemon takes actions queued by the CLI."
    )
    http_port: int | None = Field(default=None, ge=0, le=65535)
    bind_host: str = "127.0.0.1"
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    max_boxes_per_instance: int = Field(default=64, ge=1, le=1024)
    users: dict[UserName, ReviewUser] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _users_sane(self) -> ReviewConfig:
        for name in self.users:
            if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(
                    f"review.users: name {name!r} must be 1-64 letters, digits, - or _"
                )
        files = [u.token_file for u in self.users.values()]
        if len(set(files)) != len(files):
            raise ValueError("review.users: each user needs a token file of its own")
        if self.http_port is not None and not self.users:
            raise ValueError("review.http_port needs review.users (nobody could sign in)")
        return self

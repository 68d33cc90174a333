"""The review queue of held studies: encrypted store, service, HTTP API and web page.

A study the pipeline concludes ``hold`` is kept here (its held instances' output and original,
its passed outputs, sealed with AES-256-GCM) until a reviewer approves it (released to its
destination, final decision ``proceed``), rejects it (``block``), or it expires
(``review.retention_s``).  See docs/review.md.
"""

from dxai.daemon.review.component import ReviewComponent, open_review, open_review_store
from dxai.daemon.review.service import ReviewService
from dxai.daemon.review.store import ReviewStore

__all__ = ["ReviewComponent", "ReviewService", "ReviewStore", "open_review", "open_review_store"]

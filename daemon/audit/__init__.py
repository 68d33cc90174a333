"""The hash-chained audit log: every intake, fetch, decision, release and review action."""

from dxai.daemon.audit.chain import GENESIS, AuditRecord, ChainCheck, check_chain
from dxai.daemon.audit.store import FILE_NAME, AuditLog, Auditor, read_records, verify_log

__all__ = [
    "FILE_NAME",
    "GENESIS",
    "AuditLog",
    "AuditRecord",
    "Auditor",
    "ChainCheck",
    "check_chain",
    "read_records",
    "verify_log",
]

"""A C-STORE SCU (pynetdicom) that sends Part 10 files as they are, without decoding them.

pynetdicom's ``STORE_SEND_CHUNKED_DATASET`` mode reads only the file meta and streams the
dataset bytes unchanged: a damaged dataset reaches the SCP exactly as mutated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from dicom_mutations import seeds
from pydicom import dcmread
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

#: what the landing zone may answer a damaged file: success (stored, the job judges it) or
#: "cannot understand" (no usable UIDs, or a dataset that cannot be decoded); never "out of
#: resources" (0xA700, its disk failing) nor pynetdicom's 0xC211 (the handler raised)
STORE_STATUSES = frozenset({0x0000, 0xC000})
TIMEOUT_S = 30.0


@contextmanager
def raw_sending() -> Iterator[None]:
    """Send files without decoding them (pynetdicom's process-wide switch, restored after)."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = before


def scu() -> AE:
    """An SCU proposing every (SOP class, transfer syntax) pair of the seeds, and Verification."""
    ae = AE(ae_title="FUZZ-SCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    pairs: dict[str, set[str]] = {}
    for seed in seeds():
        meta = _meta_of(seed.data)
        pairs.setdefault(meta[0], set()).add(meta[1])
    for sop_class, syntaxes in sorted(pairs.items()):
        for syntax in sorted(syntaxes):
            ae.add_requested_context(sop_class, syntax)
    ae.add_requested_context(Verification)
    return ae


def _meta_of(data: bytes) -> tuple[str, str]:
    """(Media Storage SOP Class UID, Transfer Syntax UID) of a (valid) seed."""
    meta = dcmread(BytesIO(data), stop_before_pixels=True).file_meta
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def store(ae: AE, port: int, path: Path) -> int | str:
    """C-STORE ``path`` on a new association: the status, or why nothing was answered."""
    assoc = ae.associate("127.0.0.1", port, ae_title="DXAI")
    if not assoc.is_established:
        return "no_association"
    try:
        status = assoc.send_c_store(path)
    except (ValueError, AttributeError, OSError):
        return "scu_refused"  # the SCU itself could not send it (its own checks)
    finally:
        if assoc.is_established:
            assoc.release()
    if "Status" not in status:
        return "no_answer"
    return int(status.Status)


def echo(ae: AE, port: int) -> int:
    """C-ECHO status (the SCP is alive); -1 without an association."""
    assoc = ae.associate("127.0.0.1", port, ae_title="DXAI")
    if not assoc.is_established:
        return -1
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if "Status" in status else -1
    finally:
        assoc.release()

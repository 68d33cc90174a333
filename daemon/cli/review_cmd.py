"""``dxai review``: list, show, approve and reject studies held for human review.

``list`` and ``show`` read the job store and the review store directly (the running daemon
keeps writing them; SQLite's WAL lets both read).  ``approve`` and ``reject`` queue the action
(user, comment sealed under the review key) for the running daemon, which carries it out like an
API call (release to the destination, new final decision) within ``review.poll_interval_s``;
the command waits for the outcome (``--wait``).  The actor recorded in the audit log is
``user:<--user>`` (default: the login name).  Exit codes: 0 done, 1 refused or failed, 2 usage
or configuration error, 3 still queued when ``--wait`` ran out.

``reid`` (``--uid`` or ``--patient``) asks the daemon for the original behind a de-identified
UID or a patient pseudonym (``deid.reidentification_map``): the user must be a ``review.users``
admin, the daemon audits the lookup (``reid_lookup``) and hands the answer back sealed under
the review key; the command prints it and clears it from the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from dxai.configs.errors import ConfigError
from dxai.configs.schema import DxaiConfig, load_config

_USER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def register(sub: Any) -> None:
    """Add the ``review`` command with ``list``, ``show``, ``approve`` and ``reject``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "review", help="list and decide studies held for human review"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the jobs held for review")
    listing.add_argument("--json", action="store_true", help="one JSON object per held job")
    show = actions.add_parser("show", help="one held job in full (JSON)")
    show.add_argument("job_key", help="the job key (64 hex digits)")
    approve = actions.add_parser("approve", help="release a held study (the daemon does it)")
    reject = actions.add_parser("reject", help="block a held study (the daemon does it)")
    for decide in (approve, reject):
        decide.add_argument("job_key", help="the job key (64 hex digits)")
        decide.add_argument("--comment", default="", help="a comment kept with the review")
        decide.add_argument("--user", default=None, help="who decides (default: login name)")
        decide.add_argument("--wait", type=float, default=60.0, help="seconds to wait (0: none)")
    reid = actions.add_parser("reid", help="the original behind a de-identified value (admin)")
    which = reid.add_mutually_exclusive_group(required=True)
    which.add_argument("--uid", default=None, help="a de-identified Study/Series/SOP UID")
    which.add_argument("--patient", default=None, help="a patient pseudonym (PatientID out)")
    reid.add_argument("--user", default=None, help="an admin of review.users (default: login)")
    reid.add_argument("--wait", type=float, default=60.0, help="seconds to wait (0: none)")
    for action in (listing, show, approve, reject, reid):
        action.add_argument("--data-dir", default=None, help="the daemon's state.data_dir")
        action.add_argument("--config", default=None, help="YAML configuration (its data dir)")
    listing.set_defaults(func=_list)
    show.set_defaults(func=_show)
    approve.set_defaults(func=_decide, verb="approve")
    reject.set_defaults(func=_decide, verb="reject")
    reid.set_defaults(func=_reid)


def _config(args: argparse.Namespace) -> DxaiConfig:
    """The configuration (``--config``, else the defaults) with ``--data-dir`` applied."""
    config = load_config(args.config) if args.config else DxaiConfig()
    if args.data_dir:
        state = config.state.model_copy(update={"data_dir": str(args.data_dir)})
        config = config.model_copy(update={"state": state})
    if not Path(config.state.data_dir).is_dir():
        raise ConfigError(f"no data dir at {config.state.data_dir}")
    return config


async def _read(config: DxaiConfig, job_key: str | None) -> Any:
    from dxai.daemon.jobs import JobStore
    from dxai.daemon.review.component import make_store
    from dxai.daemon.review.service import ReviewService

    store = await asyncio.to_thread(functools.partial(make_store, config, create=False))
    path = Path(config.state.data_dir) / config.state.sqlite_file
    async with JobStore(path) as jobs:
        service = ReviewService(store, jobs)
        if job_key is None:
            return await service.list_held()
        return await service.show(job_key)


def _list(args: argparse.Namespace) -> int:
    held: list[dict[str, Any]] = asyncio.run(_read(_config(args), None))
    if args.json:
        for job in held:
            print(json.dumps(job, sort_keys=True))
        return 0
    if not held:
        print("review: no study is held for review")
        return 0
    for job in held:
        reasons = ",".join(job["reasons"]) or "-"
        print(f"{job['job_key']}  {job['review']:<12} {len(job['instances']):>3} held  {reasons}")
    return 0


def _show(args: argparse.Namespace) -> int:
    detail = asyncio.run(_read(_config(args), args.job_key))
    print(json.dumps(detail, indent=2, sort_keys=True))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from dxai.daemon.review.actions import FILE_NAME, ActionQueue
    from dxai.daemon.review.component import make_store, review_root

    config = _config(args)
    user = args.user or getpass.getuser()
    if not _USER.match(user):
        raise ConfigError("--user: 1-64 letters, digits, - or _")
    if not re.fullmatch(r"[0-9a-f]{64}", args.job_key):
        raise ConfigError("job key: 64 lowercase hex digits")
    store = make_store(config, create=False)
    comment = store.seal_text(args.job_key, args.comment.strip()) if args.comment.strip() else ""
    queue = ActionQueue(review_root(config) / FILE_NAME)
    action_id = queue.enqueue(args.job_key, args.verb, user, comment)
    print(f"review: {args.verb} queued for the daemon (action {action_id})", file=sys.stderr)
    return _wait(queue, action_id, args.wait, args.verb)


def _wait(queue: Any, action_id: int, wait_s: float, verb: str) -> int:
    """Poll the queued action until the daemon finished it or ``wait_s`` passed."""
    action = _finished(queue, action_id, wait_s)
    if action is None:
        return 3
    if action.status == "done":
        print(f"review: {verb} done")
        return 0
    print(f"review: {verb} failed [{action.code}]", file=sys.stderr)
    return 1


def _finished(queue: Any, action_id: int, wait_s: float) -> Any:
    """The action once the daemon finished it; None (said on stderr) when ``wait_s`` ran out."""
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        action = queue.get(action_id)
        if action is not None and action.status != "pending":
            return action
        if time.monotonic() >= deadline:
            print("review: still queued (is the daemon running?)", file=sys.stderr)
            return None
        time.sleep(0.2)


def _reid(args: argparse.Namespace) -> int:
    from dxai.daemon.review.actions import FILE_NAME, ActionQueue
    from dxai.daemon.review.component import make_store, reid_seal_name, review_root

    config = _config(args)
    user = args.user or getpass.getuser()
    if not _USER.match(user):
        raise ConfigError("--user: 1-64 letters, digits, - or _")
    if args.uid is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)*", args.uid):
        raise ConfigError("--uid: a DICOM UID (digits and dots)")
    if args.patient is not None and not re.fullmatch(r"[A-Za-z0-9._:^ -]{1,64}", args.patient):
        raise ConfigError("--patient: 1-64 letters, digits, spaces or ._:^-")
    query = f"uid:{args.uid}" if args.uid is not None else f"patient:{args.patient}"
    store = make_store(config, create=False)
    queue = ActionQueue(review_root(config) / FILE_NAME)
    action_id = queue.enqueue("", "reid", user, query)
    print(f"review: lookup queued for the daemon (action {action_id})", file=sys.stderr)
    action = _finished(queue, action_id, args.wait)
    if action is None:
        return 3
    if action.status != "done":
        print(f"review: lookup failed [{action.code}]", file=sys.stderr)
        return 1
    original = store.open_text(reid_seal_name(action_id), action.result)
    queue.clear_result(action_id)
    print(original)
    return 0

"""``dxai policy explain --event F [--config C]``: the rules that match a study event and why.

The event file holds one ``StudyEvent`` (JSON, validated like intake does).  Modality and SOP
class are matched per instance in the daemon; here they come from the event's HL7 order
(OBR-24) or from ``--modality`` / ``--sop-class`` (each value given is explained on its own).
``--referring-physician`` stands for the name the study would carry (the output says only
whether it matched; it prints the name's hash to put in ``match.referring_physician``).
``--patient-id`` also asks the configured consent source, as the daemon would, whether release
is authorised (the identifier is not printed).  Exit 0, or 2 for a bad event or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

from dxai.configs.errors import ConfigError, InvalidEventError
from dxai.configs.schema import DxaiConfig, load_config
from dxai.configs.schema.policy import physician_digest


def register(sub: Any) -> None:
    """Add the ``policy`` command with its ``explain`` action."""
    parser: argparse.ArgumentParser = sub.add_parser("policy", help="the governance policy")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    explain = actions.add_parser("explain", help="which rules match an event, and why")
    explain.add_argument("--event", required=True, help="a study event (JSON file, - for stdin)")
    explain.add_argument("--config", default=None, help="YAML configuration (default: defaults)")
    explain.add_argument("--modality", action="append", default=[], help="e.g. CT (repeatable)")
    explain.add_argument("--sop-class", action="append", default=[], help="SOP Class UID")
    explain.add_argument("--referring-physician", default=None, help="Family^Given")
    explain.add_argument("--workflow", choices=("outbound", "inbound"), default=None)
    explain.add_argument("--patient-id", default=None, help="check consent for this patient")
    explain.set_defaults(func=_explain)


def _read_event(path: str) -> Any:
    from dxai.daemon.events import parse_study_event

    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the event file {path}: {exc.strerror}") from exc
    try:
        return parse_study_event(raw)
    except InvalidEventError as exc:
        raise ConfigError(f"the event is not valid: {exc}") from exc


def _explain(args: argparse.Namespace) -> int:
    from dxai.daemon.gateways.resolve import Routes
    from dxai.daemon.policy.engine import PolicyEngine
    from dxai.daemon.policy.explain import evaluations, render
    from dxai.daemon.policy.facts import facts_from_event

    config = load_config(args.config) if args.config else DxaiConfig()
    event = _read_event(args.event)
    facts = facts_from_event(event, Routes(config).source_name(event))
    if args.workflow:
        facts = dataclasses.replace(facts, workflow=args.workflow)
    if args.referring_physician:
        digest = physician_digest(args.referring_physician)
        facts = dataclasses.replace(facts, referring_physician=digest)
        print(f"(--referring-physician as configured: {digest})", file=sys.stderr)
    engine = PolicyEngine(config.policy, config.deid)
    cases = evaluations(engine, facts, args.modality, args.sop_class)
    verdict = None
    scopes = [c.resolution.consent for c in cases if c.resolution.consent is not None]
    if args.patient_id and scopes:
        verdict = asyncio.run(_consent(config, args.patient_id, scopes[0].scope))
    sys.stdout.write(render(config, event, cases, verdict))
    return 0


async def _consent(config: DxaiConfig, patient_id: str, scope: tuple[str, ...]) -> Any:
    from dxai.daemon.policy.consent import check_consent, make_consent_source
    from dxai.daemon.policy.facts import HeaderFacts

    source = make_consent_source(config.policy.consent_source)
    return await check_consent(source, HeaderFacts(patient_id=patient_id.strip()), scope)

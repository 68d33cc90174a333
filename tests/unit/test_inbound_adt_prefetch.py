"""ADT^A04 / A01 as a trigger: the patient it registers, and the prior prefetch it starts
(here on a local archive folder: the demo's two priors and its decoy)."""

from __future__ import annotations

from pathlib import Path

from dxai.actors.inbound.adt import demographics_of_adt
from dxai.configs.schema.priors import PriorsConfig
from dxai.daemon.intake.mllp import MllpListener
from dxai.daemon.pipeline.inbound_prefetch import PriorPrefetcher
from dxai.observability.metrics import Sensor
from dxai.synth.inbound import write_inbound_demo

A04 = (
    "MSH|^~\\&|ADT|HOSP|DXAI|HOSP|20261207080000||ADT^A04|A04-1|P|2.5\r"
    "PID|1||{pid}^^^DEMO^MR||{name}||{dob}|M\r"
)


def test_the_registered_patient_is_read_from_pid() -> None:
    found = demographics_of_adt(A04.format(pid="P1", name="MÜLLER^HANS^J", dob="19610315"))
    assert found is not None
    assert (found.name, found.birth_date, found.sex) == ("MÜLLER^HANS^J", "19610315", "M")
    assert (found.patient_id, found.issuer) == ("P1", "DEMO")


def test_other_messages_are_not_triggers() -> None:
    a08 = A04.format(pid="P1", name="X^Y", dob="19610315").replace("ADT^A04", "ADT^A08")
    assert demographics_of_adt(a08) is None
    assert demographics_of_adt("MSH|^~\\&|garbage") is None
    assert demographics_of_adt("not hl7 at all") is None


async def test_an_a04_over_mllp_prefetches_the_patients_priors(tmp_path: Path) -> None:
    demo = write_inbound_demo(tmp_path / "demo")
    prefetcher = PriorPrefetcher(demo.archive, PriorsConfig(), None, Sensor())
    found: list[int] = []
    original = prefetcher.prefetch

    async def counted(target: object) -> int:
        found.append(await original(target))  # type: ignore[arg-type]
        return found[-1]

    prefetcher.prefetch = counted  # type: ignore[method-assign]

    async def submit(*_args: object) -> str:
        raise AssertionError("an ADT message makes no job")

    listener = MllpListener(
        submit, Sensor(), {"kind": "local", "path": "/x"}, on_adt=prefetcher.on_message
    )
    patient = demo.patient
    message = A04.format(pid=patient.patient_id, name="Muller^Hans", dob=patient.birth_date)
    ack = await listener.handle(message.encode())
    assert "|AA|" in ack
    await prefetcher.stop()
    assert found == [2]  # both priors, not the decoy

"""The review queue end to end in real headless Chromium (Debian ``chromium`` + ``chromedriver``).

A study whose CT carries faint burned-in text (the patient's name and birth date, a few grey
levels above the background: PP-OCR misses it, the Tesseract second reader reads it) is held by
the daemon's pixel step.  A viewer signs in and is refused when approving; the reviewer signs
in, sees the box where PHI is still legible, adds a redaction box over it, runs the verify pass
again, approves, and the study arrives at the destination Orthanc.  The audit log names both.
Screenshots go to ``tests/artifacts/review_browser/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from daemon_helpers import embedded
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle
from dxai.daemon.audit import FILE_NAME as AUDIT_FILE
from dxai.daemon.audit import read_records, verify_log

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts" / "review_browser"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TOKENS = {"alice": "alice-review-token-0123456789", "victor": "victor-view-token-0123456789"}
DEADLINE_S = 240.0
TEXT_AT = (20, 240)


def _image(text: str | None) -> np.ndarray:
    image = Image.new("L", (512, 512), 100)
    if text:
        font = ImageFont.truetype(FONT, 22)
        ImageDraw.Draw(image).text(TEXT_AT, text, fill=112, font=font)
    return np.asarray(image)


def _instances(make_ct: Callable[[], Dataset]) -> list[Dataset]:
    """Two CT images of one study: faint burned-in PHI on the first, none on the second."""
    first = make_ct()
    out = []
    for n, text in enumerate(("DOE JOHN 1970-01-01", None), start=1):
        ds = make_ct()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
        ds.PatientName, ds.PatientBirthDate, ds.InstanceNumber = "DOE^JOHN", "19700101", n
        pixels = _image(text)
        ds.Rows, ds.Columns, ds.SamplesPerPixel = 512, 512, 1
        ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 8, 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        ds.WindowCenter, ds.WindowWidth, ds.RescaleSlope, ds.RescaleIntercept = 128, 256, 1, 0
        ds.PixelData = pixels.astype(np.uint8).tobytes()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        out.append(ds)
    return out


def _config(tmp: Path, dest_url: str, inbox: Path) -> DxaiConfig:
    users = {}
    for name, role in (("alice", "reviewer"), ("victor", "viewer")):
        path = tmp / f"{name}.token"
        path.write_text(TOKENS[name])
        users[name] = {"role": role, "token_file": str(path)}
    return DxaiConfig.model_validate(
        {
            "mode": "embedded",
            "state": {"data_dir": str(tmp / "state")},
            "deid": {"pixels": "always"},
            "embedded": {"dicom_port": 0, "http_port": 0, "mllp_port": 0},
            "metrics": {"enabled": False},
            "sources": {"inbox": {"kind": "local", "root": str(inbox)}},
            "destination_dicomweb": {"base_url": dest_url},
            "review": {"http_port": 0, "users": users, "poll_interval_s": 0.2},
        }
    )


async def _held_job(handle: DaemonHandle) -> str:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        held = await handle.store.in_state("held_for_review")
        if held:
            return held[0].key
        counts = await handle.store.count_by_state()
        assert counts["released"] == counts["blocked"] == counts["failed"] == 0, counts
        await asyncio.sleep(0.2)
    pytest.fail("the study was not held before the deadline")


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,2400")
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def _shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _submit(driver: Any, button: Any) -> None:
    """Click a form's button and wait until the next page replaced this one and finished loading.

    The old page is marked with a window flag and the wait polls for a loaded document without
    it.  (Waiting for the old ``<html>`` element to go stale is flaky: while the navigation is
    under way chromedriver may answer "Node with given id does not belong to the document", an
    error ``staleness_of`` does not catch.)  Errors during the navigation are polled through.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.dxaiOldPage = true;")
    button.click()
    script = "return !window.dxaiOldPage && document.readyState === 'complete';"
    wait = WebDriverWait(driver, 120, poll_frequency=0.1, ignored_exceptions=(WebDriverException,))
    wait.until(lambda d: bool(d.execute_script(script)))


def _login(driver: Any, base: str, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{base}/review/login")
    driver.find_element(By.ID, "token").send_keys(TOKENS[user])
    _submit(driver, driver.find_element(By.ID, "login"))
    assert driver.find_element(By.ID, "user").text == user


def _viewer_is_refused(driver: Any, base: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    _login(driver, base, "victor")
    driver.get(f"{base}/review/jobs/{key}")
    _shot(driver, "01_viewer_job")
    _submit(driver, driver.find_element(By.ID, "approve"))
    assert driver.find_element(By.ID, "error-status").text.startswith("403")
    assert "viewer" in driver.find_element(By.ID, "error-detail").text
    _shot(driver, "02_viewer_refused")


def _held_box(driver: Any) -> tuple[int, int, int, int]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#instance-1 tr.box-held")
    assert rows, "no box where PHI is still legible is shown"
    cells = [int(c.text) for c in rows[0].find_elements(By.TAG_NAME, "td")[1:5]]
    return cells[0], cells[1], cells[2], cells[3]


def _images_shown(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    for cls in ("before", "after"):
        img = driver.find_element(By.CSS_SELECTOR, f"#instance-1 img.{cls}")
        width = driver.execute_script("return arguments[0].naturalWidth", img)
        assert width == 512, f"{cls} image not loaded ({width})"


def _reviewer_approves(driver: Any, base: str, key: str) -> str:
    from selenium.webdriver.common.by import By

    _login(driver, base, "alice")
    _submit(driver, driver.find_element(By.CSS_SELECTOR, f'a.job-link[href="/review/jobs/{key}"]'))
    assert "PHI" not in driver.current_url and key in driver.current_url
    _images_shown(driver)
    _x0, y0, _x1, y1 = _held_box(driver)
    assert y0 <= TEXT_AT[1] + 10 <= y1
    _shot(driver, "03_reviewer_sees_boxes")
    form = driver.find_element(By.CSS_SELECTOR, "#instance-1 form.add-box")
    values = (0, max(0, y0 - 12), 512, min(512, y1 + 12))  # the whole line, generously
    for name, value in zip(("x0", "y0", "x1", "y1"), values, strict=True):
        form.find_element(By.NAME, name).send_keys(str(value))
    _submit(driver, form.find_element(By.CSS_SELECTOR, "button.add-box-button"))
    assert driver.find_elements(By.CSS_SELECTOR, "#instance-1 tr.box-reviewer")
    _submit(driver, driver.find_element(By.CSS_SELECTOR, "#instance-1 button.verify-button"))
    assert "Verify" in driver.find_element(By.ID, "notice").text
    status = driver.find_element(By.CSS_SELECTOR, "#instance-1 .verify-status").text
    _images_shown(driver)
    _shot(driver, "04_reviewer_verified")
    driver.find_element(By.CSS_SELECTOR, "#approve-form textarea").send_keys("box added, verified")
    _submit(driver, driver.find_element(By.ID, "approve"))
    assert "Approved" in driver.find_element(By.ID, "notice").text
    assert driver.find_element(By.ID, "job-state").text == "released"
    _shot(driver, "05_reviewer_approved")
    return status


def _browser(base: str, key: str) -> str:
    driver = _driver()
    try:
        driver.implicitly_wait(10)
        _viewer_is_refused(driver, base, key)
        return _reviewer_approves(driver, base, key)
    finally:
        driver.quit()


async def _wait_count(orthanc: Any, count: int) -> None:
    end = time.monotonic() + 60.0
    while orthanc.instance_count() < count:
        if time.monotonic() > end:
            pytest.fail(f"destination holds {orthanc.instance_count()} of {count} instances")
        await asyncio.sleep(0.2)


async def test_reviewer_releases_held_study_in_chromium(
    tmp_path: Path, clean_orthanc: Any, make_ct: Callable[[], Dataset]
) -> None:
    inbox = tmp_path / "inbox" / "study"
    inbox.mkdir(parents=True)
    inputs = _instances(make_ct)
    for n, ds in enumerate(inputs):
        ds.save_as(inbox / f"{n}.dcm", enforce_file_format=True)
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": str(inputs[0].StudyInstanceUID),
        "destination": "default",
        "exchange_job_id": "review-e2e-1",
        "source": {"kind": "local", "name": "inbox", "path": "study"},
    }
    config = _config(tmp_path, clean_orthanc.dest.dicomweb_url, inbox.parent)
    async with embedded(config) as handle:
        assert handle.ports is not None and handle.review is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.ports.http}") as http:
            assert (await http.post("/events", content=json.dumps(event))).status_code == 202
        key = await _held_job(handle)
        assert clean_orthanc.dest.instance_count() == 0  # held: nothing released
        base = f"http://127.0.0.1:{handle.review.http_port}"
        status = await asyncio.to_thread(_browser, base, key)
        await _wait_count(clean_orthanc.dest, len(inputs))
        await handle.pipeline.drain(60)
    assert status in ("clean", "redacted"), status
    _check_outputs(tmp_path / "state", key, clean_orthanc.dest)
    _check_audit(tmp_path / "state", key)


def _check_outputs(state: Path, key: str, dest: Any) -> None:
    results = json.loads((state / "results" / "results" / f"{key}.json").read_text())
    decision = json.loads((state / "results" / "decisions" / f"{key}.json").read_text())
    assert (decision["decision"], results["state"]) == ("proceed", "released")
    assert results["instances_released"] == 2 and results["certificate"]["verified"]
    stored = dest.dicomweb().retrieve_study(results["deidentified_study_uid"])
    assert len(stored) == 2
    assert all("DOE" not in str(ds.get("PatientName", "")) for ds in stored)


def _check_audit(state: Path, key: str) -> None:
    records = [r for r in read_records(state / AUDIT_FILE) if r.job_key == key]
    assert verify_log(state / AUDIT_FILE).ok
    by_kind = {r.kind: r for r in records}
    assert by_kind["review_denied"].actor == "user:victor"
    for kind in ("review_box_added", "review_verify", "review_approve", "release"):
        assert by_kind[kind].actor == "user:alice", kind
    final = [r for r in records if r.kind == "decision"][-1]
    assert final.actor == "user:alice" and final.data["decision"] == "proceed"
    text = "\n".join(json.dumps(r.as_dict()) for r in records)
    assert "DOE" not in text and "box added" not in text

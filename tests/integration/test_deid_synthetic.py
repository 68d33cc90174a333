"""De-identification of the project's synthetic corpus, checked against its ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deid_checks import all_uids, header_text, leaked, normalised_errors
from pydicom import dcmread

from dxai.actors.deid import Deidentifier
from dxai.actors.outbound import deidentify_file
from dxai.actors.validation.dciodvfy import run_dciodvfy
from dxai.configs.schema.deid import DeidConfig
from dxai.synth import GROUND_TRUTH_NAME, generate_corpus

KEY = b"synthetic-test-key-0123456789abcd"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    root = tmp_path_factory.mktemp("synth")
    generate_corpus(root, seed=7, studies=2, small=True)
    truth = json.loads((root / GROUND_TRUTH_NAME).read_text(encoding="utf-8"))
    return root, list(truth["files"])


@pytest.mark.parametrize("profile", ["basic", "hipaa_safe_harbor", "research_longitudinal"])
def test_synthetic_corpus_has_no_phi_or_original_uid(
    corpus: tuple[Path, list[dict[str, object]]], tmp_path: Path, profile: str
) -> None:
    root, files = corpus
    deid = Deidentifier(DeidConfig().profiles[profile], KEY, profile_name=profile)
    study_map: dict[str, set[str]] = {}
    for record in files:
        rel = str(record["path"])
        dst = tmp_path / rel
        report = deidentify_file(root / rel, dst, deid)
        assert report.status == "ok", (rel, report.errors, report.verify)
        phi = {str(s) for s in record["phi_strings"]}  # type: ignore[attr-defined]
        assert leaked(phi, header_text(dst)) == set(), rel
        original_uids = {str(u) for u in record["original_uids"]}  # type: ignore[attr-defined]
        assert original_uids.isdisjoint(all_uids(dst)), rel
        out = dcmread(dst)
        study_map.setdefault(str(record["study_instance_uid"]), set()).add(out.StudyInstanceUID)
    assert all(len(v) == 1 for v in study_map.values())


def test_synthetic_outputs_add_no_dciodvfy_errors(
    corpus: tuple[Path, list[dict[str, object]]], tmp_path: Path
) -> None:
    root, files = corpus
    deid = Deidentifier(DeidConfig().profiles["basic"], KEY, profile_name="basic")
    new_errors = {}
    for record in files[::5]:
        rel = str(record["path"])
        deidentify_file(root / rel, tmp_path / rel, deid)
        before, after = run_dciodvfy(root / rel), run_dciodvfy(tmp_path / rel)
        added = normalised_errors(after.error_kinds()) - normalised_errors(before.error_kinds())
        if added:
            new_errors[rel] = sorted(added)
    assert new_errors == {}

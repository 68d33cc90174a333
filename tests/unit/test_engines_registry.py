"""Model registry (hash checks), shape buckets, engine selection errors, inference config."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dxai.batching.buckets import bucket_for, crop_output, pad_stack
from dxai.batching.client import make_inference_client
from dxai.batching.inprocess import InProcessClient
from dxai.batching.subbatch import pack, run_sub_batches
from dxai.configs.errors import (
    BackendUnavailableError,
    ConfigError,
    DeadlineExceededError,
    InvalidInferenceInputError,
    ModelIntegrityError,
    UnknownModelError,
)
from dxai.configs.schema.inference import EngineConfig, InferenceConfig, ModelRunConfig
from dxai.engines.base import model_labels
from dxai.engines.factory import create_engine, load_engine, shared_engine
from dxai.engines.registry import load_registry, packaged_registry, verify_model_file
from dxai.engines.tensorrt_engine import bucket_profiles, engine_cache_key
from dxai.observability.metrics import Sensor

REGISTRY_YAML = """
models:
  tiny:
    version: "1"
    format: onnx
    source: {{path: tiny.onnx}}
    sha256: {sha}
    input: {{name: x, shape: [-1, 3, -1, -1]}}
    output: {{name: y}}
    buckets: [[32, 32]]
"""


def write_registry(tmp_path: Path, content: bytes, sha: str) -> Path:
    (tmp_path / "tiny.onnx").write_bytes(content)
    path = tmp_path / "models.yaml"
    path.write_text(REGISTRY_YAML.format(sha=sha))
    return path


def test_packaged_registry_verifies_every_model():
    registry = load_registry()
    assert {"ppocr_det", "ppocr_rec", "ppocr_cls"} <= set(registry.names())
    for spec in registry:
        assert verify_model_file(spec, registry.base_dir).is_file()


def test_hash_mismatch_refuses_to_load(tmp_path: Path):
    registry = load_registry(write_registry(tmp_path, b"not the model", "a" * 64))
    with pytest.raises(ModelIntegrityError, match="sha256 mismatch"):
        verify_model_file(registry.get("tiny"), registry.base_dir)
    with pytest.raises(ModelIntegrityError, match="sha256 mismatch"):
        load_engine(registry.get("tiny"), EngineConfig(), 1, base_dir=registry.base_dir)


def test_relative_path_resolves_against_registry_file(tmp_path: Path):
    content = b"bytes"
    sha = hashlib.sha256(content).hexdigest()
    registry = load_registry(write_registry(tmp_path, content, sha))
    assert verify_model_file(registry.get("tiny"), registry.base_dir) == tmp_path / "tiny.onnx"


def test_missing_file_and_unknown_model(tmp_path: Path):
    path = write_registry(tmp_path, b"x", "b" * 64)
    (tmp_path / "tiny.onnx").unlink()
    registry = load_registry(path)
    with pytest.raises(ModelIntegrityError, match="missing"):
        verify_model_file(registry.get("tiny"), registry.base_dir)
    with pytest.raises(UnknownModelError):
        registry.get("nope")


def test_bad_registry_names_the_key(tmp_path: Path):
    path = tmp_path / "models.yaml"
    path.write_text(REGISTRY_YAML.format(sha="xyz"))
    with pytest.raises(ConfigError, match=r"models\.tiny\.sha256"):
        load_registry(path)


def test_buckets_pad_and_crop():
    det = load_registry().get("ppocr_det")
    assert bucket_for(det, 100, 300) == (320, 320)
    assert bucket_for(det, 321, 10) == (640, 640)
    assert bucket_for(det, 1000, 970) == (1024, 992)
    cls = load_registry().get("ppocr_cls")
    with pytest.raises(InvalidInferenceInputError):
        bucket_for(cls, 48, 200)
    items = [np.ones((3, 10, 20), np.float32), np.ones((3, 30, 5), np.float32)]
    batch = pad_stack(items, (32, 32), 0.0)
    assert batch.shape == (2, 3, 32, 32)
    assert batch[0].sum() == 3 * 10 * 20 and batch[1].sum() == 3 * 30 * 5
    assert crop_output(det, np.zeros((1, 320, 320), np.float32), 100, 300).shape == (1, 100, 300)
    rec = load_registry().get("ppocr_rec")
    assert crop_output(rec, np.zeros((40, 6625), np.float32), 48, 100).shape == (13, 6625)


def test_exact_shapes_pad_only_to_the_multiple_on_cpu():
    """On an engine that takes any shape, items keep their own (pad_multiple-rounded) size: a
    512x512 slice is not padded to the 640x640 bucket; a fixed-input model keeps its bucket."""
    det, rec = load_registry().get("ppocr_det"), load_registry().get("ppocr_rec")
    assert bucket_for(det, 512, 512, exact=True) == (512, 512)
    assert bucket_for(det, 500, 700, exact=True) == (512, 704)
    assert bucket_for(rec, 48, 176, exact=True) == (48, 192)
    assert bucket_for(rec, 48, 176) == (48, 320)
    cls = load_registry().get("ppocr_cls")
    assert bucket_for(cls, 48, 192, exact=True) == (48, 192)
    with pytest.raises(InvalidInferenceInputError):
        bucket_for(cls, 48, 200, exact=True)
    config = InferenceConfig()
    cpu, gpu = EngineConfig(), EngineConfig(device="cuda")
    assert config.batching.exact_shapes(cpu) and not config.batching.exact_shapes(gpu)
    pinned = config.batching.model_copy(update={"shapes": "buckets"})
    assert not pinned.exact_shapes(cpu)
    assert pinned.model_copy(update={"shapes": "exact"}).exact_shapes(gpu)
    per_model = InferenceConfig(per_model={"ppocr_det": ModelRunConfig(engine=gpu)})
    assert per_model.exact_shapes_for("ppocr_rec") and not per_model.exact_shapes_for("ppocr_det")


def test_sub_batches_give_one_outcome_per_item():
    det = load_registry().get("ppocr_det")

    class Doubler:
        def infer(self, batch: np.ndarray) -> np.ndarray:
            return batch[:, :1] * 2

    item = np.ones((3, 20, 20), np.float32)
    subs = [
        pack([item], (320, 320), 0.0, [1e12]),
        "junk",
        pack([np.ones((3, 40, 30), np.float32)], (320, 320), 0.0, [0.0]),
    ]
    outcomes = [o for per_sub in run_sub_batches(Doubler(), det, subs, 4) for o in per_sub]  # type: ignore[arg-type]
    assert isinstance(outcomes[0], np.ndarray) and outcomes[0].shape == (1, 20, 20)
    assert isinstance(outcomes[1], InvalidInferenceInputError)
    assert isinstance(outcomes[2], DeadlineExceededError)


def test_cuda_requests_never_fall_back():
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="CUDA"):
            create_engine(EngineConfig(kind="torch", device="cuda"), 4)
    spec = load_registry().get("ppocr_det")
    ort_cuda = create_engine(EngineConfig(kind="onnxruntime", device="cuda"), 4)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
            ort_cuda.load(spec, verify_model_file(spec))
    with pytest.raises(BackendUnavailableError, match="fp32"):
        create_engine(EngineConfig(kind="onnxruntime", device="cuda", precision="fp16"), 4)


def test_onnxruntime_session_options_follow_the_shape_hint():
    import onnxruntime

    fixed = create_engine(EngineConfig(intra_op_threads=3, inter_op_threads=2), 4)
    opts = fixed._options(onnxruntime)
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (3, 2)
    assert opts.enable_mem_pattern  # bucket-padded batches reuse the planned pattern
    assert opts.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    varied = create_engine(EngineConfig(), 1, variable_shapes=True)
    assert not varied._options(onnxruntime).enable_mem_pattern


def test_shared_engine_is_verified_loaded_and_logged_once(caplog: pytest.LogCaptureFixture):
    config = EngineConfig(intra_op_threads=1)
    with caplog.at_level("INFO", logger="dxai.engines.factory"):
        first = shared_engine("ppocr_det", config, 3, variable_shapes=True)
        again = shared_engine("ppocr_det", config, 3, variable_shapes=True)
    loaded = [r for r in caplog.records if r.getMessage().startswith("engine loaded")]
    assert first is again and len(loaded) == 1
    fields = {k: getattr(loaded[0], k) for k in ("model", "backend", "device")}
    assert fields == {"model": "ppocr_det", "backend": "onnxruntime", "device": "cpu"}
    assert first.info.providers == ("CPUExecutionProvider",)
    assert shared_engine("ppocr_det", config, 3) is not first  # other settings, other engine
    with pytest.raises(UnknownModelError):
        shared_engine("nope", config, 1)
    assert packaged_registry() is packaged_registry()


def test_model_labels_from_registry_or_model_metadata():
    registry = load_registry()
    rec = load_engine(registry.get("ppocr_rec"), EngineConfig(), 16, sensor=Sensor())
    labels = model_labels(registry.get("ppocr_rec"), rec)
    assert len(labels) == 6623 and rec.metadata["character"].splitlines() == list(labels)
    det = shared_engine("ppocr_det", EngineConfig(), 1, variable_shapes=True)
    assert model_labels(registry.get("ppocr_cls"), det) == ("0", "180")  # listed in the registry
    with pytest.raises(ModelIntegrityError, match="no labels"):
        model_labels(registry.get("ppocr_rec"), det)  # the detector file has no character key
    with pytest.raises(ModelIntegrityError, match="no labels"):
        model_labels(registry.get("ppocr_det"), rec)  # no labels and no metadata key
    rec.close()
    assert dict(rec.metadata) == {}


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt present")
def test_tensorrt_absent_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match="tensorrt package is not installed"):
        create_engine(EngineConfig(kind="tensorrt", device="cuda"), 4)


def test_tensorrt_profiles_and_cache_key():
    det = load_registry().get("ppocr_det")
    profiles = bucket_profiles(det, 8)
    assert profiles[0] == ((1, 3, 320, 320), (8, 3, 320, 320), (8, 3, 320, 320))
    key = engine_cache_key(det.sha256, "10.3.0", "NVIDIA H200", "fp16", profiles)
    assert key != engine_cache_key(det.sha256, "10.3.0", "NVIDIA H200", "fp32", profiles)
    assert key != engine_cache_key(det.sha256, "10.4.0", "NVIDIA H200", "fp16", profiles)
    assert key != engine_cache_key(det.sha256, "10.3.0", "NVIDIA A100", "fp16", profiles)
    assert key != engine_cache_key(det.sha256, "10.3.0", "NVIDIA H200", "fp16", profiles[:1])


def test_inference_config_overrides_and_client_choice():
    cfg = InferenceConfig(
        models=("ppocr_det",),
        per_model={"ppocr_det": ModelRunConfig(engine=EngineConfig(kind="torch"))},
    )
    assert cfg.engine_for("ppocr_det").kind == "torch"
    assert cfg.engine_for("ppocr_rec").kind == "onnxruntime"
    assert cfg.batching_for("ppocr_det") == cfg.batching
    assert isinstance(make_inference_client(cfg, load_registry()), InProcessClient)
    with pytest.raises(ValueError, match="tensorrt requires device cuda"):
        EngineConfig(kind="tensorrt")

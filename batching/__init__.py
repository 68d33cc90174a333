"""Dynamic batching and the InferenceClient (in-process batcher or Ray Serve, by config)."""

from dxai.batching.batcher import DynamicBatcher
from dxai.batching.client import InferenceClient, make_inference_client

__all__ = ["DynamicBatcher", "InferenceClient", "make_inference_client"]

"""dxai.batching package."""

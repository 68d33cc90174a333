"""dxai.engines package."""

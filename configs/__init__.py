"""dxai.configs package."""

"""dxai.daemon package."""

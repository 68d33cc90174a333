"""dxai.observability package."""

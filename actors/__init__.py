"""dxai.actors package."""

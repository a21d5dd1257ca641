"""Deployment artifacts and the renderers that derive them from the code (``python -m deploy.generate``)."""

"""`medvision-eval view`: a static HTML viewer of per-sample predictions (images re-rendered as the model saw them)."""

from .build import build_viewer

__all__ = ["build_viewer"]

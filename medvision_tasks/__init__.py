"""MedVision benchmark tasks for lmms-eval: data reader, rendering, prompts and lmms-eval glue."""

__version__ = "0.1.0"

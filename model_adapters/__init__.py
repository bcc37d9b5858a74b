"""MedVision model adapters for lmms-eval (installed as `medvision_adapters`); heavy imports stay lazy."""

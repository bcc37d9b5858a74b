"""Stock lmms-eval models through the real CLI: an unknown geometry stops the run; a declared or derived one is
recorded with its source.

* `--model dummy` (lmms-eval's no-op model) has no derivable geometry: T/L stops before any request with the
  error naming every way to declare it; with MEDVISION_GEOMETRY the record says `source: env:...`.
* A model subclassing lmms-eval's stock `Gemma3` (weights replaced by its real transformers image processor,
  registered through LMMS_EVAL_PLUGINS) gets its geometry derived from the live instance, following its
  `--model_args`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from e2e_utils import describe, read_records, run_medvision_eval, samples_files

TL_TASK = "medvision_demo_tl_kits23_task01_axial"

FAKE_GEMMA3 = '''
"""lmms-eval's stock Gemma3 with its weights replaced by a fixed answer; the image processor is real."""

from transformers import Gemma3ImageProcessor

from lmms_eval.api.model import lmms
from lmms_eval.models.simple.gemma3 import Gemma3


class FakeGemma3(Gemma3):
    def __init__(self, image_size=896, pan_and_scan=False, **kwargs):
        lmms.__init__(self)
        size = int(image_size)
        processor = Gemma3ImageProcessor(size={"height": size, "width": size}, do_pan_and_scan=pan_and_scan == "true")
        self.processor = type("Processor", (), {"image_processor": processor})()

    def generate_until(self, requests):
        return ["40.0, 20.0" for _ in requests]
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """A legacy LMMS_EVAL_PLUGINS package `mvfake` with the model `fake_gemma3` and an empty tasks folder."""
    base = tmp_path_factory.mktemp("plugin")
    package = base / "mvfake"
    (package / "models").mkdir(parents=True)
    (package / "tasks").mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks" / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text('AVAILABLE_MODELS = {"fake_gemma3": "FakeGemma3"}\n')
    (package / "models" / "fake_gemma3.py").write_text(textwrap.dedent(FAKE_GEMMA3))
    return base


def test_stock_model_without_geometry_stops_with_the_ways_to_declare_it(tmp_path):
    proc = run_medvision_eval(["run", "--model", "dummy", "--tasks", TL_TASK, "--output_path", str(tmp_path / "o")])
    assert proc.returncode == 1, describe(proc)
    out = proc.stdout + proc.stderr
    for needle in ("needs the model's image geometry", "MEDVISION_GEOMETRY", "lmms_eval_specific_kwargs", "'native'"):
        assert needle in out, describe(proc)
    assert not samples_files(tmp_path / "o")


def test_stock_model_with_env_geometry_records_the_source(tmp_path):
    out = tmp_path / "o"
    proc = run_medvision_eval(
        ["run", "--model", "dummy", "--tasks", TL_TASK, "--output_path", str(out)],
        {"MEDVISION_GEOMETRY": "qwen_smart_resize:max_pixels=1605632"},
    )
    assert proc.returncode == 0, describe(proc)
    records = read_records(samples_files(out)[TL_TASK])
    assert records and all(r["model"]["adapter"] == "dummy" for r in records)
    geometry = records[0]["geometry"]
    assert geometry["source"] == "env:MEDVISION_GEOMETRY" and geometry["params"]["max_pixels"] == 1605632


@pytest.mark.parametrize(("model_args", "size"), [("", 896), ("image_size=448", 448)])
def test_subclass_of_stock_gemma3_gets_a_derived_geometry(tmp_path, plugin_path, model_args, size):
    out = tmp_path / "o"
    args = ["run", "--model", "fake_gemma3", "--tasks", TL_TASK, "--output_path", str(out)]
    if model_args:
        args += ["--model_args", model_args]
    env = {"LMMS_EVAL_PLUGINS": "mvfake", "PYTHONPATH": str(plugin_path)}
    proc = run_medvision_eval(args, env)
    assert proc.returncode == 0, describe(proc)
    records = read_records(samples_files(out)[TL_TASK])
    assert records
    for record in records:
        geometry = record["geometry"]
        assert geometry["source"] == "stock:lmms_eval.models.simple.gemma3.Gemma3"
        assert geometry["rule_string"] == f"fixed:size={size}" and geometry["canvas"] == [size, size]
        h, w = geometry["input_hw"]
        px_h, px_w = geometry["spacing_hw"]
        assert geometry["stated_spacing_wh"] == [round(px_w * w / size, 3), round(px_h * h / size, 3)]
        assert record["model"]["adapter"] == "fake_gemma3" and record["success"]

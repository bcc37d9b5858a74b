"""Packaging: wheel contents, no stray top-level modules, light entry point, console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("lmms_eval_medvision-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_templates_stubs_and_data(wheel):
    names = set(wheel.namelist())
    for template in ("_detection_v1_yaml", "_tl_cot_yaml", "_ad_v1_yaml"):
        assert f"medvision_tasks/yaml/{template}" in names  # extensionless templates (lmms-eval 0.7.1/0.7.2 bug)
    assert "medvision_tasks/yaml/groups/medvision_detection.yaml" in names
    assert "medvision_tasks/yaml/demo/stubs/medvision_demo_tl_kits23_task01_axial.jsonl" in names
    assert "medvision_tasks/catalogue.tsv" in names
    for static in ("index.html", "viewer.js", "viewer.css"):  # the prediction viewer's own assets
        assert f"medvision_tasks/viewer/static/{static}" in names
    for data in ("label_maps_v1.json", "paper_table2_detection.csv", "paper_table3_tl.csv", "paper_table4_ad.csv"):
        assert f"medvision_metrics/data/{data}" in names
    yaml_dir = ROOT / "medvision_tasks" / "yaml"
    committed = {
        f"medvision_tasks/yaml/{p.relative_to(yaml_dir).as_posix()}"
        for p in yaml_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert committed - names == set()


def test_wheel_has_no_stray_top_level_packages(wheel):
    tops = {n.split("/")[0] for n in wheel.namelist() if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"medvision_tasks", "medvision_adapters", "medvision_metrics"}
    meta = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    text = wheel.read(meta).decode()
    assert "medvision = medvision_adapters.manifests:manifests" in text
    assert "medvision-eval = medvision_tasks.cli:main" in text


def test_no_top_level_metrics_module_installed():
    code = (
        "import importlib.util, sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
        "print(importlib.util.find_spec('metrics'), importlib.util.find_spec('model_adapters'), "
        "importlib.util.find_spec('utils'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True).stdout
    assert out.split() == ["None", "None", "None"]


def test_entry_point_registered():
    eps = [ep for ep in entry_points(group="lmms_eval.models") if ep.name == "medvision"]
    assert eps and eps[0].value == "medvision_adapters.manifests:manifests"


def test_manifests_import_without_heavy_libraries():
    """If this import pulled torch or lmms_eval.models, one failure would disable every plugin model."""
    code = """
import importlib.abc, sys
BLOCKED = ("torch", "transformers", "vllm", "openai", "lmms_eval", "datasets", "accelerate", "nibabel")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
import medvision_adapters.manifests as m
assert m.ADAPTER_CLASSES and all(v.startswith("medvision_adapters.") for v in m.ADAPTER_CLASSES.values())
print("ok", sorted(k for k in sys.modules if k.split(".")[0] in BLOCKED))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok []"


def test_manifests_build_model_manifests():
    from lmms_eval.models.registry_v2 import ModelManifest
    from medvision_adapters.manifests import ADAPTER_CLASSES, manifests

    built = manifests()
    assert all(isinstance(m, ModelManifest) for m in built)
    assert {m.model_id for m in built} == set(ADAPTER_CLASSES)
    assert all(name.startswith("medvision_") for name in ADAPTER_CLASSES)


def test_console_script_tasks_dir():
    exe = Path(sys.executable).with_name("medvision-eval")
    out = subprocess.run([str(exe), "tasks-dir"], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out, "_detection_v1_yaml").is_file()

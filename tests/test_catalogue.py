"""The task catalogue and its generator: drift, contents, docs/tasks.md, and refusal of bad entries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from medvision_tasks import catalogue
from medvision_tasks.catalogue import (
    METRICS,
    YAML_DIR,
    CatalogueError,
    build_subtasks,
    check,
    docs_text,
    generate_files,
    groups,
    read_catalogue,
    write,
)

HEADER = "set\tconfig\tlisted\tn_test\n"
NAME_RE = re.compile(
    r"^medvision_(detection|tl|ad)_[a-z0-9]+(_distance|_angle)?_task\d\d_(axial|sagittal|coronal)(_336|_560|_896|_cot|_k0p5|_k2)?$"
)


class _Loader(yaml.SafeLoader):
    """Reads lmms-eval YAMLs: `!function x` becomes the string 'x'."""


_Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


# ------------------------------------------------------------------------------------------ drift
def test_committed_yaml_and_docs_equal_the_generator_output():
    assert check() == [], "run `python -m medvision_tasks.catalogue --write`"
    assert catalogue.main(["--check"]) == 0


def test_check_reports_each_kind_of_drift(tmp_path, monkeypatch):
    root = tmp_path / "yaml"
    write(root)
    assert check(root) == []
    (root / "main" / "medvision_tl_kits23_task01_axial.yaml").write_text("edited\n")
    (root / "cot" / "stubs" / "medvision_ad_feta24_task01_axial_cot.jsonl").unlink()
    (root / "main" / "medvision_extra.yaml").write_text("task: medvision_extra\n")
    assert check(root) == [
        "changed: main/medvision_tl_kits23_task01_axial.yaml",
        "missing: cot/stubs/medvision_ad_feta24_task01_axial_cot.jsonl",
        "not generated: main/medvision_extra.yaml",
    ]
    write(root)
    assert check(root) == [] and not (root / "main" / "medvision_extra.yaml").exists()
    monkeypatch.setattr(catalogue, "docs_text", lambda: "stale\n")
    assert check() == ["changed: docs/tasks.md"]


def test_generation_is_deterministic():
    assert generate_files() == generate_files()
    assert docs_text() == docs_text()


# ---------------------------------------------------------------------------------------- contents
def test_subtask_counts_per_set():
    subtasks = build_subtasks(read_catalogue())
    counts: dict[str, int] = {}
    for s in subtasks:
        counts[s.set] = counts.get(s.set, 0) + 1
    assert counts == {
        "main": 43,
        "res336": 43,
        "res560": 43,
        "res896": 43,
        "cot": 43,
        "detection_planeood": 48,
        "detection_taskood": 15,
        "tl_planeood": 20,
        "tl_taskood": 7,
        "demo": 8,
        "spacing": 30,
        "demo_spacing": 12,
    }
    main = [s for s in subtasks if s.set == "main"]
    assert [sum(s.family == f for s in main) for f in ("detection", "tl", "ad")] == [28, 10, 5]
    assert sum(min(s.n_test, 1000) for s in main if s.family == "detection") == 23071
    assert sum(min(s.n_test, 1000) for s in main if s.family == "tl") == 2441
    assert sum(min(s.n_test, 1000) for s in main if s.family == "ad") == 2060


def test_names_follow_spec_and_start_with_medvision():
    for s in build_subtasks(read_catalogue()):
        if s.set in ("demo", "demo_spacing"):
            assert s.name.startswith("medvision_demo_")
        else:
            assert NAME_RE.match(s.name), s.name
    for name in groups(build_subtasks(read_catalogue())):
        assert name.startswith("medvision")


def test_subtask_yaml_is_small_and_points_at_its_template_and_stub():
    for s in build_subtasks(read_catalogue()):
        path = YAML_DIR / s.folder / f"{s.name}.yaml"
        config = _load(path)
        assert set(config) == {"include", "task", "dataset_kwargs", "metadata"}, path
        assert config["include"] == f"../_{s.family}_{s.prompt_style}_yaml"
        assert config["task"] == s.name
        assert (path.parent / config["dataset_kwargs"]["data_files"]["test"]).is_file()
        assert config["metadata"] == {
            "version": catalogue.TASK_VERSION,
            "official_config": s.config,
            "official_task": s.official_task,
        }
    assert build_subtasks(read_catalogue())[0].official_task == "CrossMoDA_BoxCoordinate_Task01_Axial"


def test_group_metrics_are_emitted_by_every_member():
    subtasks = build_subtasks(read_catalogue())
    family_of = {s.name: s.family for s in subtasks}
    group_map = groups(subtasks)

    def leaf_families(name: str) -> set[str]:
        if name in family_of:
            return {family_of[name]}
        return set().union(*(leaf_families(m) for m in group_map[name][0]))

    for name, (members, _) in group_map.items():
        config = _load(YAML_DIR / "groups" / f"{name}.yaml")
        assert config["group"] == name and config["task"] == members
        listed = {m["metric"] for m in config["aggregate_metric_list"]}
        for family in leaf_families(name):
            assert listed <= {metric for metric, _ in METRICS[family]}, (name, family)
        assert all(m["weight_by_size"] is True for m in config["aggregate_metric_list"])


def test_docs_list_every_group_and_subtask_with_config_and_count():
    text = (catalogue.DOCS_FILE).read_text()
    for s in build_subtasks(read_catalogue()):
        row = next(line for line in text.splitlines() if f"| `{s.name}` |" in line)
        assert f"`{s.config}`" in row
        if s.n_test is not None:
            assert f"| {s.n_test:,} |" in row
    for name in groups(build_subtasks(read_catalogue())):
        assert f"| `{name}` |" in text
    assert "| `medvision_detection` | 28 | 23,071 |" in text


def test_yaml_readme_names_every_group_and_metric():
    text = (YAML_DIR / "README.md").read_text()
    for name in groups(build_subtasks(read_catalogue())):
        assert f"`{name}`" in text, name
    for metrics in METRICS.values():
        for metric, _ in metrics:
            assert f"`{metric}`" in text, metric
    assert f"**{catalogue.TASK_VERSION}**" in text  # changelog entry for the current metadata.version


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "main_x\tKiTS23_BoxSize_Task01_Axial_Test\t1\t1",
            r"catalogue.tsv:2: unknown set/variant 'main_x' \(valid: main, detection_planeood",
        ),
        (
            "main\tKiTS23_BoxSize_Task01_Oblique_Test\t1\t1",
            r"catalogue.tsv:2: unknown plane 'Oblique' in 'KiTS23_BoxSize_Task01_Oblique_Test' \(valid: Sagittal",
        ),
        (
            "main\tKiTS23_BoxSize_Task01_Axial_Train\t1\t1",
            r"catalogue.tsv:2: 'KiTS23_BoxSize_Task01_Axial_Train': subtasks",
        ),
        ("main\tKiTS23_BoxSize_Task01_Axial_Test\tmany\t1", r"catalogue.tsv:2: count 'many' is not an integer or '-'"),
        ("main\tKiTS23_BoxSize_Task01_Axial_Test\t1", r"catalogue.tsv:2: expected 4 tab-separated columns"),
        ("main\tKiTS23_Nothing_Task01_Axial_Test\t1\t1", r"catalogue.tsv:2: "),
    ],
)
def test_generator_refuses_bad_entries_naming_them(tmp_path, line, message):
    path = tmp_path / "catalogue.tsv"
    path.write_text(HEADER + line + "\n")
    with pytest.raises(CatalogueError, match=message):
        read_catalogue(path)


def test_generator_refuses_duplicates_and_a_bad_header(tmp_path):
    path = tmp_path / "catalogue.tsv"
    row = "main\tKiTS23_BoxSize_Task01_Axial_Test\t1\t1\n"
    path.write_text(HEADER + row + row)
    with pytest.raises(CatalogueError, match=r"catalogue.tsv:3: duplicate entry main KiTS23_BoxSize_Task01_Axial_Test"):
        read_catalogue(path)
    path.write_text("set\tconfig\n" + row)
    with pytest.raises(CatalogueError, match="header must be set, config, listed, n_test"):
        read_catalogue(path)


def test_write_refuses_a_bad_catalogue_without_touching_files(tmp_path, monkeypatch):
    bad = tmp_path / "catalogue.tsv"
    bad.write_text(HEADER + "main\tKiTS23_BoxSize_Task01_Coronalish_Test\t1\t1\n")
    monkeypatch.setattr(catalogue, "CATALOGUE_FILE", bad)
    monkeypatch.setattr(catalogue.read_catalogue, "__defaults__", (bad,))
    root = tmp_path / "yaml"
    with pytest.raises(CatalogueError, match="unknown plane 'Coronalish'"):
        write(root)
    assert not root.exists()

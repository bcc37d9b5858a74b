"""Settings precedence (docs/reference.md §0.5): env > active adapter > task variant > global; frozen and recorded."""

from __future__ import annotations

import pytest

from medvision_tasks import settings
from medvision_tasks.errors import SettingsError


def test_global_defaults_and_variant_defaults():
    base = settings.resolve_settings("t_plain")
    assert (base.parse, base.prompt_style, base.intensity, base.sample_cap, base.planner_version) == (
        "last_k",
        "v1",
        "minmax",
        1000,
        "1.0.0",
    )
    cot = settings.resolve_settings("t_cot", {"prompt_style": "cot"})
    assert (cot.parse, cot.prompt_style) == ("answer_tag", "cot")
    res = settings.resolve_settings("t_res", {"reshape": 336})
    assert res.reshape == 336


def test_adapter_defaults_beat_variant_and_env_beats_adapter(monkeypatch):
    settings.register_active_model({"adapter": "x", "geometry": "native"}, {"prompt_style": "cot", "reshape": 512})
    s = settings.resolve_settings("t_a")
    assert (s.prompt_style, s.parse, s.reshape) == ("cot", "answer_tag", 512)
    assert settings.resolve_settings("t_res", {"reshape": 896}).reshape == 896  # a resolution variant keeps N
    settings.reset()
    settings.register_active_model({"adapter": "x"}, {"prompt_style": "cot"})
    monkeypatch.setenv("MEDVISION_PARSE", "last_k")
    monkeypatch.setenv("MEDVISION_INTENSITY", "hu_window")
    s = settings.resolve_settings("t_b")
    assert (s.prompt_style, s.parse, s.intensity) == ("cot", "last_k", "hu_window")


def test_frozen_per_task_and_recorded(monkeypatch):
    first = settings.resolve_settings("t_f")
    monkeypatch.setenv("MEDVISION_BOX_FIX", "1")
    assert settings.resolve_settings("t_f") is first  # resolved once, then frozen
    assert settings.resolve_settings("t_g").box_fix is True
    assert len(first.settings_id) == 12 and first.settings_id != settings.resolve_settings("t_g").settings_id
    assert set(first.to_record()) >= {"intensity", "parse", "box_fix", "planner_version", "sample_cap"}


def test_official_spelling_and_conflict_warning(monkeypatch):
    monkeypatch.setenv("MedVision_PLANNER_VERSION", "latest")
    assert settings.resolve_settings("t_o").planner_version == "latest"
    monkeypatch.setenv("MEDVISION_PLANNER_VERSION", "1.0.0")
    with pytest.warns(UserWarning, match="differ; using MEDVISION_PLANNER_VERSION"):
        assert settings.resolve_settings("t_p").planner_version == "1.0.0"
    monkeypatch.setenv("MedVision_DISABLE_SAMPLE_FILTERING", "true")
    assert settings.resolve_settings("t_q").filtering is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MEDVISION_PARSE", "answer-tag", r"MEDVISION_PARSE='answer-tag' is not valid.*Did you mean 'answer_tag'"),
        ("MEDVISION_INTENSITY", "hu", r"choose one of minmax, hu_window"),
        ("MEDVISION_BOX_FIX", "maybe", r"MEDVISION_BOX_FIX='maybe': expected one of 0, 1, true, false"),
        ("MEDVISION_SAMPLE_CAP", "ten", r"MEDVISION_SAMPLE_CAP='ten': expected an integer \(0 = no cap\)"),
        ("MEDVISION_SAMPLE_CAP", "-1", r"must be >= 0"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        settings.resolve_settings(f"t_bad_{name}_{value}")


def test_unknown_adapter_default_is_refused():
    with pytest.raises(SettingsError, match="unknown task-setting defaults"):
        settings.register_active_model({"adapter": "x"}, {"prompt": "cot"})

"""Baseline adapters without the CLI: seeding, argument validation, replay attribution."""

from __future__ import annotations

import json

import pytest
from medvision_adapters.baselines import RandomBaseline, ReplayModel, seeded_rng
from medvision_adapters.errors import AdapterConfigError
from medvision_metrics.reference import model_key_for

from medvision_tasks import settings


def test_seed_rule_is_sha256_of_seed_config_row():
    import hashlib
    import random

    digest = hashlib.sha256(b"1234|C|7").digest()
    assert seeded_rng(1234, "C", 7).random() == random.Random(int.from_bytes(digest[:8], "big")).random()


def test_unknown_model_arg_names_valid_keys():
    with pytest.raises(AdapterConfigError, match=r"unknown --model_args key 'sead'. Did you mean 'seed'\?"):
        RandomBaseline(sead=3)
    with pytest.raises(AdapterConfigError, match=r"seed='x' is not an integer"):
        RandomBaseline(seed="x")


def test_replay_can_be_attributed_to_a_paper_model(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"config": "C", "row": 0, "response": "1"}) + "\n")
    ReplayModel(path=str(path), as_adapter="medvision_huatuogpt_vision", geometry="clip336_pad")
    info = settings.active_model().info
    assert info["adapter"] == "medvision_huatuogpt_vision" and info["geometry"] == "clip336_pad"
    assert model_key_for(info["adapter"], info["pretrained"]) == "huatuogpt_vision_34b"
    ReplayModel(path=str(path))
    assert model_key_for(settings.active_model().info["adapter"], None) == "replay"
    with pytest.raises(AdapterConfigError, match="must name a medvision_\\* adapter"):
        ReplayModel(path=str(path), as_adapter="qwen")

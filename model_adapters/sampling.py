"""The one sampling builder: lmms-eval `gen_kwargs` over an adapter's defaults, with one table of keys and types.

`build_sampling(defaults, gen_kwargs, keys, rule=...)` is used by the chat adapters (`rule="backend"`: the
dict the hf/vllm/openai backends read, `until` inside) and by the authors'-repository adapters
(`rule="transformers"`: `generate` keywords for the authors' code, `until` separately, sampling-only keys
dropped for greedy decoding).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from medvision_metrics.options import bool_word

from .errors import AdapterConfigError

# gen_kwargs key -> type of the value it sets; `until` (stop strings) is handled apart.
GENERATION_TYPES: dict[str, type] = {
    "max_new_tokens": int,
    "min_new_tokens": int,
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "do_sample": bool,
    "num_beams": int,
    "repetition_penalty": float,
    "length_penalty": float,
    "no_repeat_ngram_size": int,
    "seed": int,
}
ALIASES = {"max_gen_toks": "max_new_tokens"}
SAMPLING_ONLY_KEYS = ("temperature", "top_p", "top_k")
def to_bool(where: str, value: Any) -> bool:
    """A model-arg or gen-kwarg switch: bool, 0/1, or true/false text."""
    switch = bool_word(value)
    if switch is None:
        raise AdapterConfigError(f"{where}={value!r} is not a boolean; use true or false.")
    return switch


def coerce(key: str, value: Any) -> Any:
    """`value` as the type GENERATION_TYPES gives `key` (None stays None: "unset")."""
    where = f"--gen_kwargs {key}"
    kind = GENERATION_TYPES[key]
    if value is None:
        return None
    if kind is bool:
        return to_bool(where, value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        noun = "an integer" if kind is int else "a number"
        raise AdapterConfigError(f"{where}={value!r} is not {noun}.") from None


def stop_list(value: Any) -> list[str]:
    until = [value] if isinstance(value, str) else list(value or [])
    return [str(s) for s in until if s]


@dataclass
class Sampling:
    """What `build_sampling` returns: the settings, the stop strings and the gen_kwargs keys it ignored."""

    settings: dict[str, Any]
    until: list[str]
    ignored: list[str]


def build_sampling(
    defaults: Mapping[str, Any], gen_kwargs: Mapping[str, Any], keys: Collection[str], rule: str = "backend"
) -> Sampling:
    """Defaults overridden by the gen_kwargs keys in `keys` (others are returned as ignored).

    rule="backend": a given `temperature` without `do_sample` removes a default `do_sample` (so
    `temperature=0.7` samples also for greedy-by-default profiles); a None value removes the key; `until`
    is also stored in the settings. rule="transformers": a given `temperature` without `do_sample` sets
    `do_sample = temperature > 0`; without sampling, `do_sample=False` and temperature/top_p/top_k are dropped.
    """
    given: dict[str, Any] = {}
    ignored: list[str] = []
    until: list[str] | None = None
    for key, value in gen_kwargs.items():
        if key == "until":
            until = stop_list(value)
            continue
        name = ALIASES.get(key, key)
        if name not in keys or name not in GENERATION_TYPES:
            ignored.append(key)
            continue
        given[name] = coerce(name, value)
    settings = dict(defaults)
    if rule == "backend":
        if "temperature" in given and "do_sample" not in given:
            settings.pop("do_sample", None)
        for name, value in given.items():
            if value is None:
                settings.pop(name, None)
            else:
                settings[name] = value
        settings["until"] = until if until is not None else list(settings.get("until", []))
        return Sampling(settings, settings["until"], ignored)
    settings.update(given)
    if "do_sample" not in given and given.get("temperature") is not None:
        settings["do_sample"] = given["temperature"] > 0
    if not settings.get("do_sample"):
        settings["do_sample"] = False
        for name in SAMPLING_ONLY_KEYS:
            settings.pop(name, None)
    return Sampling(settings, until or [], ignored)

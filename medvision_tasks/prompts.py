"""Prompt text for the three task families, byte-exact to the v1 and CoT templates (docs/reference.md §3.1-§3.4).

A prompt is one user turn of newline-separated blocks with no trailing newline. Detection prompts state
no sizes. T/L and A/D prompts state the pixel size (pw, ph) in mm, width first, printed with ``:.3f``;
CoT prompts also state the perceived canvas as ``Wc x Hc`` pixels. Both come from `geometry.py`.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from medvision_metrics.options import closest_match

from medvision_tasks.errors import SettingsError

PROMPT_STYLES: tuple[str, ...] = ("v1", "cot")
PROMPT_FAMILIES: tuple[str, ...] = ("detection", "tl", "ad")

# v1 opens with "Given the input medical image: {image_description}, " even for an empty description;
# CoT drops ": {image_description}" when it is empty.
_OPENING_WITH_DESCRIPTION = "Given the input medical image: {image_description}, "
_OPENING_WITHOUT_DESCRIPTION = "Given the input medical image, "

# T/L v1: a plain-string unit is spelled out; a one-element list is used unchanged.
_TL_UNIT_WORDS = {"mm": "millimeters", "cm": "centimeters"}

# A/D task lines; each ends with ".\n" and is followed directly by "Additional information:".
_AD_DISTANCE_WITH_NAME = (
    "estimate the distance of {name} in {unit}, which is the distance between 2 landmark points: "
    "(landmark 1) {p1}, (landmark 2) {p2}.\n"
)
_AD_DISTANCE_WITHOUT_NAME = (
    "estimate the distance between 2 landmark points in {unit}: (landmark 1) {p1}, (landmark 2) {p2}.\n"
)
_AD_ANGLE_WITH_NAME = (
    "estimate the angle of {name} in {unit}, which is the angle between 2 lines: (line 1) the line "
    "connecting {l1p1} and {l1p2}, (line 2) the line connecting {l2p1} and {l2p2}.\n"
)
_AD_ANGLE_WITHOUT_NAME = (
    "estimate the angle between 2 lines in {unit}: (line 1) the line connecting {l1p1} and {l1p2}, "
    "(line 2) the line connecting {l2p1} and {l2p2}.\n"
)

# §3.2 v1 detection.
_V1_DETECTION = (
    "Task:\n"
    "{opening}return the coordinates of the lower-left and upper-right corner of the bounding box for "
    "the {label_name}.\n"
    "Format requirement:\n"
    "The answer should be four decimal numbers separated by commas without any units or additional text. "
    "The first two numbers are the coordinates of the lower-left corner and the last two numbers are the "
    "coordinates of the upper-right corner of the bounding box. Use relative coordinates in the image "
    "space, where the origin is at the lower-left corner of the image. Relative coordinates should be "
    "values between 0 and 1, representing the relative positions in the image."
)

# §3.2 v1 T/L; {unit} follows the v1 unit rule.
_V1_TL = (
    "Task:\n"
    "{opening}estimate the major and minor axis lengths of the ellipse enclosing the {label_name}, in "
    "{unit}.\n"
    "Additional information:\n"
    "The pixel size for this image is {pw:.3f} {unit} (width) x {ph:.3f} {unit} (height).\n"
    "Format requirement:\n"
    "The answer should be two decimal numbers separated by a comma without any units or additional text. "
    "The first is the major axis length, and the second is the minor axis length."
)

# §3.2 v1 A/D; the pixel line hard-codes mm, also for angles.
_V1_AD = (
    "Task:\n"
    "{opening}{task_line}Additional information:\n"
    "The pixel size for this image is {pw:.3f} mm (width) x {ph:.3f} mm (height).\n"
    "Format requirement:\n"
    "The answer should be a single decimal number without any units or additional text."
)

# §3.3 CoT detection (no Additional information block).
_COT_DETECTION = (
    "Task:\n"
    "{opening}return the coordinates of the lower-left and upper-right corners of the bounding box for "
    "the {label_name}.\n"
    "Format requirement:\n"
    "The reasoning process and the final answer must be enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively. For example: <think> reasoning process here </think> <answer> answer "
    "here </answer>. The answer should be four decimal numbers separated by commas without any units or "
    "additional text. The first two numbers are the coordinates of the lower-left corner and the last "
    "two numbers are the coordinates of the upper-right corner of the bounding box. Use relative "
    "coordinates in the image space, where the origin is at the lower-left corner of the image. Relative "
    "coordinates should be values between 0 and 1, representing the relative positions in the image.\n"
    "Reasoning steps:\n"
    "Step 1: Identify the relative coordinates of the bounding box. The relative coordinates must be "
    "written as (x, y), where x is the relative position in width and y is the relative position in "
    "height. Report the reasoning process and final answer within <think> </think> and <answer> "
    "</answer> tags, respectively. Inside <think> </think>, include reasoning and step results using "
    "<step-k-reasoning> </step-k-reasoning> and <step-k-answer> </step-k-answer> tags.\n"
    "Follow the reasoning steps to get the final answer in the required format."
)

# §3.3 CoT T/L; millimeters throughout (§9 Q10).
_COT_TL = (
    "Task:\n"
    "{opening}estimate the major and minor axis lengths of the ellipse enclosing the {label_name}, in "
    "millimeters.\n"
    "Additional information:\n"
    "The image size is {Wp} pixels (width) x {Hp} pixels (height).\n"
    "The pixel size for this image is {pw:.3f} millimeters (width) x {ph:.3f} millimeters (height).\n"
    "Format requirement:\n"
    "The final answer must be enclosed within <answer> </answer> tags. The answer should consist of two "
    "decimal numbers separated by a comma, without units or extra text. The first number is the major "
    "axis length, and the second is the minor axis length.\n"
    "Reasoning steps:\n"
    "Step 1: Identify the major axis (the longest diameter) of the ellipse enclosing the target region. "
    "Find its two endpoints and record their relative coordinates in the format (x, y) = (relative "
    "position in width direction, relative position in height direction). Denote the endpoints as "
    "(x1_major, y1_major) and (x2_major, y2_major). Step 2: Identify the minor axis (the shortest "
    "diameter) of the ellipse. Find its two endpoints and record their relative coordinates in the same "
    "(x, y) format. Denote them as (x1_minor, y1_minor) and (x2_minor, y2_minor). Step 3: Given the "
    "pixel dimensions (pixel_width, pixel_height) and image size (image_width, image_height), compute "
    "the physical length of the major axis using: major_axis_length = sqrt(((x2_major - x1_major) * "
    "image_width * pixel_width)^2 + ((y2_major - y1_major) * image_height * pixel_height)^2). Step 4: "
    "Similarly, compute the physical length of the minor axis using: minor_axis_length = sqrt(((x2_minor "
    "- x1_minor) * image_width * pixel_width)^2 + ((y2_minor - y1_minor) * image_height * "
    "pixel_height)^2). Report the reasoning process and final answer within <think> </think> and "
    "<answer> </answer> tags, respectively. Inside <think> </think>, include reasoning and step results "
    "using <step-k-reasoning> </step-k-reasoning> and <step-k-answer> </step-k-answer> tags.\n"
    "Follow the reasoning steps to get the final answer in the required format."
)

# §3.3 CoT A/D; the pixel line keeps mm.
_COT_AD = (
    "Task:\n"
    "{opening}{task_line}Additional information:\n"
    "The image size is {Wp} pixels (width) x {Hp} pixels (height).\n"
    "The pixel size for this image is {pw:.3f} mm (width) x {ph:.3f} mm (height).\n"
    "Format requirement:\n"
    "The final answer must be enclosed within <answer> </answer> tags. The answer should be a single "
    "decimal number without units or extra text.\n"
    "Reasoning steps:\n"
    "{reasoning_steps}\n"
    "Follow the reasoning steps to get the final answer in the required format."
)

# §3.3 CoT A/D reasoning steps, distance.
_COT_DISTANCE_STEPS = (
    "Step 1: Identify the landmark 1 and record its relative coordinates in the format (x, y) = "
    "(relative position in width direction, relative position in height direction). Denote the "
    "coordinates as (x1, y1). Step 2: Identify the landmark 2 and record its relative coordinates in the "
    "same (x, y) format. Denote the coordinates as (x2, y2). Step 3: Given the pixel dimensions "
    "(pixel_width, pixel_height) and image size (image_width, image_height), compute the physical "
    "distance between the two landmarks using: distance = sqrt(((x2 - x1) * image_width * pixel_width)^2 "
    "+ ((y2 - y1) * image_height * pixel_height)^2). Report the reasoning process and final answer "
    "within <think> </think> and <answer> </answer> tags, respectively. Inside <think> </think>, include "
    "reasoning and step results using <step-k-reasoning> </step-k-reasoning> and <step-k-answer> "
    "</step-k-answer> tags."
)

# §3.3 CoT A/D reasoning steps, angle (the middle dot is U+00B7).
_COT_ANGLE_STEPS = (
    "Step 1: Identify line 1 and record the relative coordinates of its two endpoints in the format (x, "
    "y) = (relative position in width direction, relative position in height direction). Denote the "
    "endpoints as (x1_line1, y1_line1) and (x2_line1, y2_line1). Step 2: Identify line 2 and record the "
    "relative coordinates of its two endpoints in the same (x, y) format. Denote them as (x1_line2, "
    "y1_line2) and (x2_line2, y2_line2). Step 3: Given the pixel dimensions (pixel_width, pixel_height) "
    "and image size (image_width, image_height), compute the angle between the two lines using the "
    "formula: angle = arccos(|A · B| / (||A|| ||B||)), where A and B are the vectors of the two lines "
    "computed from the physical coordinates of their endpoints. A = ((x2_line1 - x1_line1) * image_width "
    "* pixel_width, (y2_line1 - y1_line1) * image_height * pixel_height) and B = ((x2_line2 - x1_line2) "
    "* image_width * pixel_width, (y2_line2 - y1_line2) * image_height * pixel_height). Denote A=(Ax, "
    "Ay) and B=(Bx, By). Then, angle = arccos(|Ax*Bx + Ay*By| / (sqrt(Ax^2 + Ay^2) * sqrt(Bx^2 + "
    "By^2))). Report the reasoning process and final answer within <think> </think> and <answer> "
    "</answer> tags, respectively. Inside <think> </think>, include reasoning and step results using "
    "<step-k-reasoning> </step-k-reasoning> and <step-k-answer> </step-k-answer> tags."
)

# §3.4 MedVision-V0 system prompt, sent as the system message.
MEDVISION_V0_SYSTEM_PROMPT = (
    "A conversation between a User and an Assistant. The User asks a question, and the Assistant solves "
    "it. The Assistant first thinks through the reasoning process internally, then provides the User "
    "with the answer. The reasoning process and the final answer must be enclosed within <think> "
    "</think> and <answer> </answer> tags, respectively. For example: <think> reasoning process here "
    "</think> <answer> answer here </answer>. Within the <think> </think> tags, report the reasoning "
    "process for each step inside <step-k-reasoning> </step-k-reasoning> tags, followed by the "
    "intermediate results in <step-k-answer> </step-k-answer> tags. For example: <think> "
    "<step-1-reasoning> reasoning for step 1 </step-1-reasoning> <step-1-answer> intermediate result "
    "from step 1 </step-1-answer> </think>."
)


def _closest(word: str, candidates: Sequence[str]) -> str:
    match = closest_match(word, candidates, cutoff=0.0)
    return f"; did you mean {match!r}?" if match else "."


def _text_field(doc: Mapping[str, Any], field: str, allow_empty: bool) -> str:
    value = doc.get(field)
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ValueError(f"prompt: doc field {field!r} must be a non-empty string, got {value!r}.")
    return value


def _opening(doc: Mapping[str, Any], style: str) -> str:
    description = _text_field(doc, "mv_image_description", allow_empty=True)
    if style == "cot" and not description:
        return _OPENING_WITHOUT_DESCRIPTION
    return _OPENING_WITH_DESCRIPTION.format(image_description=description)


def _biometric_profile(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    profile = doc.get("biometric_profile")
    if not isinstance(profile, Mapping):
        raise ValueError(f"prompt: doc field 'biometric_profile' must be a dict, got {profile!r}.")
    return profile


def _unwrap_single(value: Any, field: str) -> Any:
    """Return the element of a one-element list (dict-of-lists layout), else the value itself."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"prompt: biometric_profile[{field!r}] must hold one value, got {value!r}.")
        return value[0]
    return value


def _tl_unit_v1(profile: Mapping[str, Any]) -> str:
    """Return the v1 T/L unit: a one-element list's element unchanged, or mm/cm spelled out."""
    unit = profile.get("metric_unit")
    if isinstance(unit, (list, tuple)):
        unit = _unwrap_single(unit, "metric_unit")
        if not isinstance(unit, str):
            raise ValueError(f"prompt: biometric_profile['metric_unit'] must be a string, got {unit!r}.")
        return unit
    if not isinstance(unit, str):
        raise ValueError(f"prompt: biometric_profile['metric_unit'] must be a string, got {unit!r}.")
    return _TL_UNIT_WORDS.get(unit, unit)


def _names(doc: Mapping[str, Any], field: str, count: int) -> list[str]:
    value = doc.get(field)
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ValueError(f"prompt: doc field {field!r} must be a list of {count} items, got {value!r}.")
    return list(value)


def _ad_task_line(doc: Mapping[str, Any]) -> str:
    """Return the A/D task line of §3.2, ending with '.\\n'."""
    profile = _biometric_profile(doc)
    metric_type = _unwrap_single(profile.get("metric_type"), "metric_type")
    unit = _unwrap_single(profile.get("metric_unit"), "metric_unit")
    if not isinstance(unit, str):
        raise ValueError(f"prompt: biometric_profile['metric_unit'] must be a string, got {unit!r}.")
    name = _text_field(doc, "mv_ad_name", allow_empty=True)
    if metric_type == "distance":
        point_1, point_2 = _names(doc, "mv_ad_points", 2)
        template = _AD_DISTANCE_WITH_NAME if name else _AD_DISTANCE_WITHOUT_NAME
        return template.format(
            name=name, unit=unit.strip().replace("mm", "millimeters"), p1=point_1, p2=point_2
        )
    if metric_type == "angle":
        line_1, line_2 = _names(doc, "mv_ad_lines", 2)
        l1p1, l1p2 = _names({"line 1": line_1}, "line 1", 2)
        l2p1, l2p2 = _names({"line 2": line_2}, "line 2", 2)
        template = _AD_ANGLE_WITH_NAME if name else _AD_ANGLE_WITHOUT_NAME
        return template.format(name=name, unit=unit, l1p1=l1p1, l1p2=l1p2, l2p1=l2p1, l2p2=l2p2)
    raise ValueError(
        f"prompt: biometric_profile['metric_type'] must be 'distance' or 'angle', got {metric_type!r}."
    )


def _pixel_size(pixel_size_wh: tuple[float, float] | None, family: str) -> tuple[float, float]:
    if pixel_size_wh is None:
        raise ValueError(f"prompt: a {family} prompt needs pixel_size_wh (pw, ph) from geometry.py.")
    pixel_w, pixel_h = pixel_size_wh
    return float(pixel_w), float(pixel_h)


def _image_size(image_size_wh: tuple[int, int] | None, family: str) -> tuple[int, int]:
    if image_size_wh is None:
        raise ValueError(f"prompt: a CoT {family} prompt needs image_size_wh (Wc, Hc) from geometry.py.")
    try:
        return operator.index(image_size_wh[0]), operator.index(image_size_wh[1])
    except TypeError as error:
        raise ValueError(f"prompt: image_size_wh must be two integers, got {image_size_wh!r}.") from error


def build_prompt(
    doc: dict,
    style: str,
    pixel_size_wh: tuple[float, float] | None = None,
    image_size_wh: tuple[int, int] | None = None,
) -> str:
    """Return the user prompt for one row.

    ``style`` is "v1" (§3.2) or "cot" (§3.3). ``pixel_size_wh`` is the stated (pw, ph) in mm, required
    for T/L and A/D; ``image_size_wh`` is the perceived canvas (Wc, Hc), required for CoT T/L and A/D.
    Detection ignores both. Raises `SettingsError` for an unknown style and ValueError for a missing size
    or a malformed doc field.
    """
    if style not in PROMPT_STYLES:
        raise SettingsError(
            f"prompt style {style!r} is unknown{_closest(str(style), PROMPT_STYLES)} "
            f"Valid styles: {', '.join(PROMPT_STYLES)}."
        )
    family = doc.get("mv_family")
    if family not in PROMPT_FAMILIES:
        raise ValueError(
            f"prompt: doc field 'mv_family' must be one of {', '.join(PROMPT_FAMILIES)}, got {family!r}."
        )
    opening = _opening(doc, style)

    if family == "detection":
        label_name = _text_field(doc, "mv_label_name", allow_empty=False)
        template = _V1_DETECTION if style == "v1" else _COT_DETECTION
        return template.format(opening=opening, label_name=label_name)

    pixel_w, pixel_h = _pixel_size(pixel_size_wh, family)
    image_size = _image_size(image_size_wh, family) if style == "cot" else None

    if family == "tl":
        label_name = _text_field(doc, "mv_label_name", allow_empty=False)
        if image_size is None:
            unit = _tl_unit_v1(_biometric_profile(doc))
            return _V1_TL.format(opening=opening, label_name=label_name, unit=unit, pw=pixel_w, ph=pixel_h)
        return _COT_TL.format(
            opening=opening, label_name=label_name, Wp=image_size[0], Hp=image_size[1], pw=pixel_w, ph=pixel_h
        )

    task_line = _ad_task_line(doc)
    if image_size is None:
        return _V1_AD.format(opening=opening, task_line=task_line, pw=pixel_w, ph=pixel_h)
    metric_type = _unwrap_single(_biometric_profile(doc).get("metric_type"), "metric_type")
    steps = _COT_DISTANCE_STEPS if metric_type == "distance" else _COT_ANGLE_STEPS
    return _COT_AD.format(
        opening=opening,
        task_line=task_line,
        Wp=image_size[0],
        Hp=image_size[1],
        pw=pixel_w,
        ph=pixel_h,
        reasoning_steps=steps,
    )


def prompt_sha1(text: str) -> str:
    """Return the SHA-1 hex digest of the UTF-8 prompt text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()

"""Rendering (docs/reference.md §1.7): bit-identical slices, min-max truncation, constant slice, HU windows,
percentile fallback, zoom reshape, and one volume read shared by doc_to_visual and doc_to_text."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from medvision_tasks import hooks, render
from medvision_tasks.arrow_rows import RowSources, rows_for_subtask
from medvision_tasks.errors import VolumeError
from medvision_tasks.row_cache import rows_for_config
from medvision_tasks.settings import Settings

KITS_DET = "KiTS23_BoxSize_Task01_Axial_Test"


@pytest.fixture(autouse=True)
def _fresh_cache():
    render.volume_cache().clear()
    yield
    render.volume_cache().clear()


def test_slices_are_bit_identical_to_get_fdata(demo_root):
    rows = rows_for_config(demo_root, KITS_DET)[:3]
    for r in rows:
        ref = nib.load(r["image_file"]).get_fdata().astype(np.float32)[:, :, r["slice_idx"]]
        got = render.load_slice(r["image_file"], 2, r["slice_idx"])
        assert got.dtype == np.float32 and np.array_equal(got, ref)
    with pytest.raises(VolumeError, match=r"slice_idx 999 out of range for axis 2"):
        render.load_slice(rows[0]["image_file"], 2, 999)


def test_minmax_truncates_and_constant_slice_is_zero():
    img = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    # (v - 0) / 3 * 255 = 0, 85, 170, 255 ; 1/3*255 = 84.99999 in float32 -> 84 or 85 by truncation
    expected = ((img - 0) / np.float32(3) * 255).astype(np.uint8)
    assert np.array_equal(render.minmax_uint8(img), expected)
    assert render.minmax_uint8(np.array([[0.0, 0.5]], dtype=np.float32)).tolist() == [[0, 255]]
    assert render.minmax_uint8(np.array([[0.2, 0.6, 1.0]], dtype=np.float32)).tolist() == [[0, 127, 255]]
    assert not render.minmax_uint8(np.full((4, 4), 35.0, dtype=np.float32)).any()


def test_hu_windows_and_percentile_fallback():
    assert render.hu_window_for("CT", "kidney", "KiTS23", "01") == (-160.0, 240.0)  # soft tissue 400/40
    assert render.hu_window_for("CT", "left lung", "X", "01") == (-1350.0, 150.0)  # lung 1500/-600
    assert render.hu_window_for("CT", "brain", "X", "01") == (0.0, 80.0)
    assert render.hu_window_for("CT", "sacrum", "X", "01") == (-500.0, 1300.0)  # bone 1800/400
    assert render.hu_window_for("CT", "femur", "X", "01") is None  # Knee: no window
    assert render.hu_window_for("MRI", "kidney", "X", "01") is None
    assert render.hu_window_for("CT", "kidney", "KiPA22", "01") is None  # contrast CT: percentile
    img = np.array([[-1000.0, -160.0], [40.0, 240.0]], dtype=np.float32)
    assert render.intensity_uint8(img, "hu_window", (-160.0, 240.0)).tolist() == [[0, 0], [127, 255]]
    ramp = np.arange(201, dtype=np.float32).reshape(1, -1)
    out = render.intensity_uint8(ramp, "hu_window", None)  # percentile 0.5/99.5 -> 1.0 and 199.0
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[0, -1] == 255 and out[0, 100] == 127
    assert not render.intensity_uint8(np.ones((3, 3), np.float32), "hu_window", None).any()


def test_zoom_reshape_and_rendered_image(demo_root):
    r = rows_for_config(demo_root, KITS_DET)[0]
    img = render.load_slice(r["image_file"], 2, r["slice_idx"])
    assert img.shape == (64, 56)
    small = render.reshape_slice(img, 32)
    assert small.shape == (32, 32) and small.dtype == np.float32
    assert small[0, 0] == img[0, 0] and small[-1, -1] == img[-1, -1]  # order-1 zoom keeps the corners
    doc = dict(r, mv_task="t_zoom", mv_family="detection")
    pil = hooks.render_image(doc, Settings(reshape=336))
    assert pil.size == (336, 336) and pil.mode == "RGB"
    pil = hooks.render_image(doc, Settings())
    assert pil.size == (56, 64)  # PIL size is (W, H)
    arr = np.asarray(pil)
    assert np.array_equal(arr[..., 0], render.minmax_uint8(img)) and np.array_equal(arr[..., 0], arr[..., 2])


def test_visual_and_text_read_each_volume_once(demo_root, monkeypatch):
    monkeypatch.setenv("MEDVISION_GEOMETRY", "qwen_smart_resize")
    rows = rows_for_config(demo_root, "KiTS23_TumorLesionSize_Task01_Axial_Test")
    docs = [dict(r, mv_task="t_once", mv_variant={}) for r in rows]
    for doc in docs:
        hooks.doc_to_visual(doc)
        hooks.doc_to_text(doc)
    cache = render.volume_cache()
    volumes = {d["image_file"] for d in docs}
    assert cache.loads == len(volumes)
    assert cache.hits == 2 * len(docs) - len(volumes)


def test_non_ras_volume_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "las.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.diag([-1.0, 1.0, 1.0, 1.0])), path)
    with pytest.raises(VolumeError, match=r"orientation LAS is not RAS\+.*MEDVISION_ALLOW_NON_RAS=1"):
        render.load_slice(str(path), 2, 0)
    render.volume_cache().clear()
    with pytest.warns(UserWarning, match="not RAS"):
        render.load_slice(str(path), 2, 0, allow_non_ras=True)


def test_corrupt_volume(tmp_path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(VolumeError, match=r"bad\.nii\.gz: cannot read NIfTI .*corrupt or truncated"):
        render.load_slice(str(path), 2, 0)


# ------------------------------------------------------------------------------- fixture root (tests/fixture_root.py)
def test_truncated_volumes(fixture_root, tmp_path):
    source = fixture_root / "Datasets/KiTS23/Images/kits23_000.nii.gz"
    raw = gzip.decompress(source.read_bytes())
    short = tmp_path / "short_data.nii.gz"
    short.write_bytes(gzip.compress(raw[: 352 + 100]))  # header intact, voxel data cut
    with pytest.raises(
        VolumeError, match=r"short_data\.nii\.gz: cannot read NIfTI .*corrupt or truncated, re-download"
    ):
        render.load_slice(str(short), 2, 0)
    cut = tmp_path / "cut_stream.nii.gz"
    cut.write_bytes(source.read_bytes()[:-40])  # gzip stream ends early
    with pytest.raises(VolumeError, match=r"cut_stream\.nii\.gz: cannot read NIfTI .*corrupt or truncated"):
        render.load_slice(str(cut), 2, 0)


def test_pinned_pixels_minmax_hu_window_and_resize(fixture_root):
    # KiTS23 test case 0, axial slice 1 of the int16 CT ramp: v[i, j] = -400 + 37 i + 13 j + 101 = -299 + 37 i + 13 j
    sources = RowSources(overrides={"KiTS23": {"detection": {"01": {"labels_map": {"1": "kidney"}}}}})
    row = rows_for_subtask(fixture_root, KITS_DET, Settings(sample_cap=1), sources)[0]
    assert (row["mv_image_file_rel"], row["slice_idx"], row["label"]) == ("Images/kits23_000.nii.gz", 1, 1)
    doc = dict(row, mv_task="t_pinned")
    gray = np.asarray(hooks.render_image(doc, Settings()))[..., 0]
    # min-max: min -299 at (0, 0), max 325 at (13, 11); (v + 299) / 624 * 255, truncated
    assert gray.shape == (14, 12)
    assert [gray[0, 0], gray[0, 1], gray[1, 0], gray[7, 5], gray[13, 11]] == [0, 5, 15, 132, 255]
    # HU window of "kidney" (soft tissue 400/40 -> [-160, 240]): (clip(v) + 160) / 400 * 255, truncated
    hu = np.asarray(hooks.render_image(doc, Settings(intensity="hu_window")))[..., 0]
    assert [hu[0, 0], hu[5, 5], hu[7, 5], hu[13, 11]] == [0, 70, 117, 255]  # v = -299, -49, 25, 325
    # 336 x 336 bilinear zoom of a linear ramp is the ramp at o * (n - 1) / 335: at (67, 335) v = -299 + 96.2 + 143
    big = np.asarray(hooks.render_image(doc, Settings(reshape=336)))[..., 0]
    assert big.shape == (336, 336) and [big[0, 0], big[67, 335], big[335, 335]] == [0, 97, 255]
    # the constant axial slice 5 of test case 0 renders all zeros
    const = dict(doc, slice_idx=5)
    assert not np.asarray(hooks.render_image(const, Settings())).any()


@pytest.mark.parametrize(
    ("config", "dtype"),
    [
        ("KiTS23_BoxSize_Task01_Coronal_Test", np.int16),
        ("CrossMoDA_BoxSize_Task01_Sagittal_Test", np.float32),
        ("Ceph-Biometrics-400_BiometricsFromLandmarks_Angle_Task01_Sagittal_Test", np.uint8),
    ],
)
def test_one_pass_gzip_read_is_bit_identical(fixture_root, config, dtype):
    for r in rows_for_config(fixture_root, config):
        ref_img = nib.load(r["image_file"])
        assert ref_img.get_data_dtype() == dtype
        index = [slice(None)] * 3
        index[r["slice_dim"]] = r["slice_idx"]
        ref = ref_img.get_fdata().astype(np.float32)[tuple(index)]
        assert np.array_equal(render.load_slice(r["image_file"], r["slice_dim"], r["slice_idx"]), ref)


def test_cache_bounds_by_bytes_and_by_count(demo_root):
    configs = (KITS_DET, "OAIZIB-CM_BoxSize_Task01_Axial_Test")
    paths = sorted({r["image_file"] for c in configs for r in rows_for_config(demo_root, c)})
    assert len(paths) >= 3
    by_count = render.VolumeCache(max_bytes=2**40, max_items=2)
    for path in paths + paths[:1]:
        by_count.get(path)
    assert by_count.loads == len(paths) + 1  # the first volume was evicted by the count cap
    one = render.VolumeCache(max_bytes=1)
    for path in paths[:2] + paths[:2]:
        one.get(path)
    assert one.loads == 4 and one.hits == 0  # a 1-byte budget keeps only the newest volume


def test_cache_count_setting(monkeypatch):
    from medvision_tasks.errors import SettingsError
    from medvision_tasks.settings import volume_cache_items

    assert volume_cache_items() is None
    monkeypatch.setenv("MEDVISION_VOLUME_CACHE", "2")
    assert volume_cache_items() == 2
    monkeypatch.setenv("MEDVISION_VOLUME_CACHE", "zero")
    with pytest.raises(SettingsError, match=r"MEDVISION_VOLUME_CACHE='zero': expected a number of volumes >= 1"):
        volume_cache_items()

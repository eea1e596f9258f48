"""Bringing an outside model's samples in: what is accepted, and the one
line every bad input gets before any work."""

import numpy as np
import pytest
from PIL import Image

from pipeline.cli import main as rgf
from pipeline.data.export import export_sets
from pipeline.errors import DataError, RgfError
from pipeline.generative.imported import check_images, check_name, load_samples, read_images
from tests.helpers import compose, write_params


def _images(n=12, size=28, value=7):
    return np.full((n, size, size, 3), value, np.uint8)


def test_uint8_samples_pass_and_the_first_m_are_kept():
    images = _images(12)
    images[10:] = 99
    out = check_images(images, 28, 10, "s")
    assert out.shape == (10, 28, 28, 3) and out.dtype == np.uint8 and (out == 7).all()


def test_floats_in_0_1_become_uint8():
    out = check_images(np.full((4, 28, 28, 3), 0.5, np.float32), 28, 4, "s")
    assert out.dtype == np.uint8 and (out == 128).all()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((10, 28, 28), np.uint8), r"s: shape \(10, 28, 28\), expected \(M, 28, 28, 3\) images"),
        (np.zeros((10, 3, 28, 28), np.uint8), r"is channels-first; transpose to \(M, 28, 28, 3\)"),
        (np.zeros((10, 32, 32, 3), np.uint8), r"expected \(M, 28, 28, 3\) \(the study's images are 28 px RGB\)"),
        (np.zeros((9, 28, 28, 3), np.uint8), "9 samples, fewer than evaluation.num_samples = 10; draw more"),
        (np.full((10, 28, 28, 3), -0.5), r"float values in \[-0.5, -0.5\], expected \[0, 1\]; a \[-1, 1\] output"),
        (np.full((10, 28, 28, 3), 255.0), r"float values in \[255, 255\], expected \[0, 1\]$"),
        (np.full((10, 28, 28, 3), np.nan), "NaN or infinite values"),
        (np.zeros((10, 28, 28, 3), np.int32), "dtype int32, expected uint8"),
    ],
)
def test_bad_samples_get_one_line(images, message):
    with pytest.raises(DataError, match=message):
        check_images(images, 28, 10, "s")


def test_npz_npy_and_png_folders_are_read(tmp_path):
    np.savez(tmp_path / "a.npz", images=_images(3), other=np.zeros(2))
    np.savez(tmp_path / "b.npz", _images(3, value=9))
    np.save(tmp_path / "c.npy", _images(3, value=11))
    assert (read_images(tmp_path / "a.npz") == 7).all()
    assert (read_images(tmp_path / "b.npz") == 9).all()  # its only array
    assert (read_images(tmp_path / "c.npy") == 11).all()
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_images(1, value=i)[0]).save(folder / f"{i:03d}.png")
    pngs = read_images(folder)
    assert pngs.shape == (3, 28, 28, 3) and [int(p[0, 0, 0]) for p in pngs] == [0, 1, 2]  # in name order
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "grey.png")
    with pytest.raises(DataError, match="grey.png: mode L, expected RGB"):
        read_images(folder)


def test_unreadable_sources_get_one_line(tmp_path):
    np.savez(tmp_path / "two.npz", a=_images(2), b=_images(2))
    (tmp_path / "x.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="arrays \\['a', 'b'\\]; name the samples `images`"):
        read_images(tmp_path / "two.npz")
    with pytest.raises(DataError, match="expected an .npz, an .npy or a folder of PNGs"):
        read_images(tmp_path / "x.txt")
    with pytest.raises(DataError, match="no .png files"):
        read_images(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file or folder"):
        load_samples(tmp_path / "missing.npz", 28, 10)


@pytest.mark.parametrize(
    ("name", "message"),
    [("gan", "is a built-in model's"), ("My-Model", "use lower-case letters"), ("2gan", "use lower-case")],
)
def test_an_imported_model_needs_a_name_of_its_own(name, message):
    with pytest.raises(RgfError, match=message):
        check_name(name)


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, compose("smoke", "evaluation.num_samples=10"))
    np.savez(tmp_path / "s.npz", images=_images(12))
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "skewed_k7", "--seed", "0"], "--dataset skewed_k7: not a training set of this study"),
        (["--dataset", "balanced", "--seed", "3"], "seed 3 is not in seeds"),
        (["--dataset", "balanced", "--seed", "0", "--factor", "swell"], "--factor swell: not a factor of this study"),
    ],
)
def test_import_refuses_a_run_that_does_not_exist_before_reading_samples(study, capsys, args, message):
    argv = ["import-samples", "missing.npz", "--model", "ppca", *args]
    argv += [] if "--factor" in args else ["--factor", "colour"]
    assert rgf(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "missing.npz" not in err
    assert not (study / "imports").exists()


def test_import_keeps_checked_samples_and_never_overwrites_silently(study, capsys):
    argv = ["import-samples", "s.npz", "--model", "ppca", "--factor", "colour", "--dataset", "skewed_k1", "--seed", "0"]
    assert rgf(argv) == 0
    kept = study / "imports" / "ppca" / "colour-skewed_k1-s0.npz"
    with np.load(kept) as archive:
        assert archive["images"].shape == (10, 28, 28, 3)
    out = capsys.readouterr().err  # rgf's messages go to stderr
    assert "dvc exp run -S 'imported=[ppca]'" in out and ",ppca]'" in out
    assert rgf(argv) == 2
    assert "already imported; give --replace" in capsys.readouterr().err
    assert rgf([*argv, "--replace"]) == 0


def test_export_refuses_a_folder_it_did_not_write_before_any_work(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(RgfError, match=r"holds files this output \(export\) did not write"):
        export_sets(tmp_path / "no-data", ["balanced"], foreign, "npz", 10, [0])
    assert (foreign / "notes.txt").read_text() == "keep me"

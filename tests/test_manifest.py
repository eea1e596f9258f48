"""The manifest source: a folder of labelled images + CSV (CompCars, your own data)."""

import csv
import struct
import zlib

import numpy as np
import pytest
import scipy.io
from PIL import Image

from pipeline.data.compcars import compcars_manifest
from pipeline.data.datasets import capacity, load_dataset, present_share, select_observed
from pipeline.data.manifest import load_image, load_manifest_source, read_manifest
from pipeline.data.standin import MAKES, write_standin
from pipeline.errors import DataError
from pipeline.files import SourceManifest, read, read_data_manifest
from pipeline.stages import prepare, run, source
from tests.helpers import compose, params, with_key, write_params

PER_CELL = 10


@pytest.fixture(scope="module")
def cars(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cars")
    write_standin(folder, PER_CELL, seed=0)
    return folder


def _params(folder, **kw):
    """The compcars profile's data.manifest, pointed at `folder`."""
    return params("compcars").data.manifest.model_copy(update={"root": str(folder), **kw})


def _rewrite(folder, rows, header=("path", "make", "colour")):
    with (folder / "manifest.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def _copy(cars, tmp_path):
    # a private copy whose manifest a test may break
    for p in (cars / "image").iterdir():
        (tmp_path / "image").mkdir(exist_ok=True)
        (tmp_path / "image" / p.name).write_bytes(p.read_bytes())
    rows = list(csv.reader((cars / "manifest.csv").open()))[1:]
    return rows


def test_the_stand_in_reads_back_with_classes_and_factor(cars):
    table = read_manifest(_params(cars))
    assert len(table) == 4 * PER_CELL
    assert table.groupby(["label", "factor"]).size().to_dict() == {
        (0, 0): PER_CELL,
        (0, 1): PER_CELL,
        (1, 0): PER_CELL,
        (1, 1): PER_CELL,
    }
    first = table.iloc[0]
    assert first["path"].endswith("volkswagen_black_0000.png") and first["label"] == 0 and first["factor"] == 0


def test_stand_in_makes_differ_in_shape_and_colours_in_body(cars):
    # black and white bodies: white cars are brighter in the car's middle
    def centre(make, colour):
        imgs = [load_image(str(cars / f"image/{make.lower()}_{colour}_{i:04d}.png"), 32) for i in range(PER_CELL)]
        return np.mean([im[14:22, 10:22].mean() for im in imgs])

    for make in MAKES:
        assert centre(make, "white") > centre(make, "black") + 60


def test_the_source_splits_every_cell_exactly_and_resizes(cars):
    rng = np.random.default_rng(0)
    train, test = load_manifest_source(_params(cars, test_fraction=0.2, image_size=32), rng)
    assert train.images.shape == (32, 32, 32, 3) and test.images.shape == (8, 32, 32, 3)
    cells = np.bincount(test.labels * 2 + test.factor, minlength=4)
    assert cells.tolist() == [2, 2, 2, 2]


def test_a_split_column_is_obeyed(cars, tmp_path):
    rows = _copy(cars, tmp_path)
    _rewrite(
        tmp_path, [r + ["test" if i < 3 else "train"] for i, r in enumerate(rows)], ("path", "make", "colour", "s")
    )
    train, test = load_manifest_source(_params(tmp_path, split_column="s", image_size=16), np.random.default_rng(0))
    assert len(test.labels) == 3 and len(train.labels) == 4 * PER_CELL - 3


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda rows: rows[:5] + [["image/volkswagen_black_0000.png", "Volkswagon", "black"]], "unknown make"),
        (lambda rows: rows + [["image/x.png", "Toyota", "black"]], "1 image(s) not found"),
        (lambda rows: [[r[0], r[1], "silver" if i == 2 else r[2]] for i, r in enumerate(rows)], "line(s) 4"),
        (lambda rows: rows + [rows[0]], "listed twice"),
        (lambda rows: [], "no rows"),
    ],
)
def test_bad_manifests_are_named(cars, tmp_path, edit, message):
    rows = _copy(cars, tmp_path)
    _rewrite(tmp_path, edit(rows))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(_params(tmp_path))


def test_a_missing_folder_manifest_or_column_is_named(cars, tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_manifest(_params(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no manifest; write a CSV with columns path,make,colour"):
        read_manifest(_params(tmp_path))
    with pytest.raises(DataError, match=r"no column\(s\) \['brand'\]"):
        read_manifest(_params(cars, class_column="brand"))


def test_an_unreadable_image_is_named(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="a.png: not a readable image"):
        load_image(str(tmp_path / "a.png"), 16)


def test_observed_selection_gives_each_dataset_the_same_class_sizes():
    labels = np.array([0] * 10 + [1] * 12)
    factor = np.array([1] * 4 + [0] * 6 + [1] * 5 + [0] * 7, dtype=np.uint8)
    balanced, skewed = present_share(2, None), present_share(2, 0)
    assert capacity(labels, factor, balanced).tolist() == [8, 10]
    assert capacity(labels, factor, skewed).tolist() == [4, 7]
    assert capacity(labels, factor, present_share(2, 0, 0.25)).tolist() == [5, 9]
    sizes = np.minimum(capacity(labels, factor, balanced), capacity(labels, factor, skewed))
    idx = select_observed(labels, factor, skewed, sizes, np.random.default_rng(0))
    assert np.bincount(labels[idx] * 2 + factor[idx], minlength=4).tolist() == [0, 4, 7, 0]
    idx = select_observed(labels, factor, balanced, sizes, np.random.default_rng(0))
    assert np.bincount(labels[idx] * 2 + factor[idx], minlength=4).tolist() == [2, 2, 3, 4]


def _stage_params(tmp_path, cars):
    """The compcars profile on the stand-in cars: 32 px, 20 % test, 8 val images."""
    raw = compose("compcars", "data.manifest.image_size=32", "data.manifest.test_fraction=0.2", "data.val_size=8")
    assert raw["skew"]["rare_classes"] == [0] and raw["datasets"] == ["balanced", "skewed_k0"]
    return write_params(tmp_path, with_key(raw, "data.manifest.root", str(cars)))


def test_source_and_prepare_build_balanced_and_skewed_car_sets(cars, tmp_path):
    params = _stage_params(tmp_path, cars)
    assert run(source.main, ["--params", str(params), "--out", str(tmp_path / "source")]) == 0
    made = read(SourceManifest, tmp_path / "source" / "manifest.json", "")
    assert made.source == "manifest" and (made.train.size, made.test.size) == (32, 8)
    assert made.train.per_class == [16, 16] and made.train.present_per_class == [8, 8]
    assert made.test.per_class == [4, 4] and made.test.present_per_class == [2, 2]
    argv = ["--params", str(params), "--factor", "colour", "--source", str(tmp_path / "source")]
    assert run(prepare.main, argv + ["--out", str(tmp_path / "colour")]) == 0
    manifest = read_data_manifest(tmp_path / "colour")
    assert manifest.class_names == ["Volkswagen", "Toyota"] and manifest.factor_values == ("black", "white")
    assert manifest.num_classes == 2 and manifest.image_size == 32
    assert manifest.factor == "colour" and manifest.source == "manifest"
    assert set(manifest.datasets) == {"balanced", "skewed_k0", "test", "val"}
    counts = {name: manifest.datasets[name].counts for name in ("balanced", "skewed_k0", "test", "val")}
    # 8 train images per make and colour: the skewed set can hold 8 per make, so every set has 8 per make
    assert counts["balanced"] == {"0": {"f0": 4, "f1": 4}, "1": {"f0": 4, "f1": 4}}
    assert counts["skewed_k0"] == {"0": {"f0": 0, "f1": 8}, "1": {"f0": 8, "f1": 0}}
    assert counts["test"] == {"0": {"f0": 2, "f1": 2}, "1": {"f0": 2, "f1": 2}}
    assert counts["val"] == {"0": {"f0": 2, "f1": 2}, "1": {"f0": 2, "f1": 2}}
    skewed = load_dataset(tmp_path / "colour" / "skewed_k0")
    assert skewed.images.shape == (16, 32, 32, 3)
    # the counts are those of the arrays written next to the manifest
    assert manifest.datasets["skewed_k0"].size == 16
    assert np.bincount(skewed.labels * 2 + skewed.factor, minlength=4).tolist() == [0, 8, 8, 0]


def test_a_factor_other_than_the_manifest_column_is_refused(cars, tmp_path, capsys):
    params = _stage_params(tmp_path, cars)
    out = tmp_path / "thin"
    argv = ["--params", str(params), "--factor", "thin", "--source", str(tmp_path / "source"), "--out", str(out)]
    assert run(prepare.main, argv) == 2
    assert "factor 'thin' does not exist for source manifest; choose from ['colour']" in capsys.readouterr().err
    assert not out.exists() and not [p for p in out.parent.iterdir() if "partial" in p.name]


def _release(folder):
    """A miniature CompCars sv_data folder: 3 models, 8 images."""
    names = np.empty((3, 3), dtype=object)
    for i, (make, model) in enumerate([("Volkswagen", "Volkswagen Golf"), ("Toyota ", "Toyota Camry"), ("BWM", "X5")]):
        names[i] = make, model, np.array([[100 + i]])
    entries = [("1/a.jpg", 1), ("1/b.jpg", 0), ("1/c.jpg", 1), ("2/d.jpg", 0), ("2/e.jpg", 9), ("2/f.jpg", 1)]
    entries += [("3/g.jpg", 1), ("1/h.jpg", -1)]
    colours = np.empty((len(entries), 2), dtype=object)
    for i, (path, code) in enumerate(entries):
        colours[i] = path, np.array([[code]])
    scipy.io.savemat(folder / "sv_make_model_name.mat", {"sv_make_model_name": names})
    scipy.io.savemat(folder / "color_list.mat", {"color_list": colours})
    (folder / "test_surveillance.txt").write_text("1/c.jpg\n2/f.jpg\n")
    for path, _ in entries:
        (folder / "image" / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 10)).save(folder / "image" / path)


def test_compcars_manifest_from_the_release_layout(tmp_path):
    _release(tmp_path)
    table = compcars_manifest(tmp_path, even_makes=False)
    assert table.values.tolist() == [
        ["image/1/a.jpg", "Volkswagen", "white", "train"],
        ["image/1/b.jpg", "Volkswagen", "black", "train"],
        ["image/1/c.jpg", "Volkswagen", "white", "test"],
        ["image/2/d.jpg", "Toyota", "black", "train"],
        ["image/2/f.jpg", "Toyota", "white", "test"],
    ]
    even = compcars_manifest(tmp_path, even_makes=True)
    assert even["make"].value_counts().to_dict() == {"Volkswagen": 2, "Toyota": 2}
    table.to_csv(tmp_path / "manifest.csv", index=False)
    assert len(read_manifest(_params(tmp_path, split_column="split"))) == 5


def test_compcars_manifest_names_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="sv_make_model_name.mat: missing"):
        compcars_manifest(tmp_path)
    _release(tmp_path)
    with pytest.raises(DataError, match=r"make\(s\) \['Skoda'\] are not in sv_make_model_name.mat"):
        compcars_manifest(tmp_path, makes=["Skoda"])
    with pytest.raises(DataError, match=r"colour\(s\) \['pink'\] unknown"):
        compcars_manifest(tmp_path, colours=["pink"])


def test_the_source_stage_stops_on_a_folder_without_manifest(cars, tmp_path, capsys):
    params = _stage_params(tmp_path, tmp_path)  # the params point at an empty folder
    assert run(source.main, ["--params", str(params), "--out", str(tmp_path / "source")]) == 2
    err = capsys.readouterr().err
    assert "manifest.csv: no manifest; write a CSV with columns path,make,colour" in err
    assert not (tmp_path / "source").exists()


def _outside_root(tmp_path):
    """A copy of the stand-in under tmp_path/root and a readable image outside it."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    return root, tmp_path / "outside" / "x.png"


@pytest.mark.parametrize(
    "spelling",
    [
        lambda root, outside: "../outside/x.png",
        lambda root, outside: "image/../../outside/x.png",
        lambda root, outside: str(outside),  # absolute
        lambda root, outside: "/etc/passwd",
        lambda root, outside: "../../../../../../../../etc/passwd",
        lambda root, outside: (root / "image" / "link.png").symlink_to(outside) or "image/link.png",
        lambda root, outside: (root / "ext").symlink_to(outside.parent, target_is_directory=True) or "ext/x.png",
    ],
)
def test_a_path_out_of_the_root_is_refused_before_any_file_is_opened(cars, tmp_path, monkeypatch, spelling):
    root, outside = _outside_root(tmp_path)
    rows = _copy(cars, root)
    Image.new("RGB", (20, 10)).save(outside)
    path = spelling(root, outside)
    _rewrite(root, rows[:5] + [[path, "Toyota", "black"]] + rows[5:])

    def never_open(path, *args, **kwargs):
        raise AssertionError(f"opened {path}")

    monkeypatch.setattr("pipeline.data.manifest.Image.open", never_open)
    with pytest.raises(DataError) as info:
        load_manifest_source(_params(root), np.random.default_rng(0))
    assert str(info.value) == (
        f"{root / 'manifest.csv'}: 1 path(s) lead outside data.manifest.root {root.resolve()}, e.g. {path!r} "
        "(line(s) 7); paths must be relative to the root and stay in it (no .., no symlink out)"
    )


def test_a_symlink_within_the_root_is_read(cars, tmp_path):
    root, _ = _outside_root(tmp_path)
    rows = _copy(cars, root)
    (root / "more").mkdir()
    (root / "more" / "link.png").symlink_to(root / rows[0][0])
    _rewrite(root, rows[1:] + [["more/link.png", *rows[0][1:]]])
    assert len(read_manifest(_params(root))) == len(rows)


@pytest.mark.parametrize("twice", ["./{}", "image/../{}", "image/./../{}", "{}"])
def test_one_image_under_two_spellings_is_listed_twice(cars, tmp_path, twice):
    rows = _copy(cars, tmp_path)
    again = twice.format(rows[0][0].replace("/", "//"))  # image//x.png is image/x.png
    _rewrite(tmp_path, rows + [[again, *rows[0][1:]]])
    with pytest.raises(DataError) as info:
        read_manifest(_params(tmp_path))
    spellings = sorted({rows[0][0], again})
    assert str(info.value) == (
        f"{tmp_path / 'manifest.csv'}: the same image is listed twice on lines 2, {len(rows) + 2} "
        f"(as {spellings}); keep one row"
    )


def _png_header(path, width, height):
    """A PNG that declares width x height 1-bit pixels: a decompression bomb
    (PIL refuses it at open, from the header alone)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(bytes(height * (1 + width // 8)))  # every row filter 0, all zero: ~1 KB per 1e6 px
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_named_in_one_line(cars, tmp_path, capsys):
    rows = _copy(cars, tmp_path)
    _rewrite(tmp_path, rows)
    bomb = tmp_path / rows[3][0]
    _png_header(bomb, 20_000, 20_000)  # 4e8 pixels, over twice PIL's limit: DecompressionBombError
    assert bomb.stat().st_size < 200_000
    params = _stage_params(tmp_path / "conf", tmp_path)
    assert run(source.main, ["--params", str(params), "--out", str(tmp_path / "source")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and err.strip().count("\n") == 0
    assert f"{bomb}: refused as a possible decompression bomb (Image size (400000000 pixels) exceeds limit" in err
    assert not (tmp_path / "source").exists()


def test_an_image_over_the_pixel_limit_is_refused_not_warned_about(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")  # 4096 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # over the limit, under twice it: only a warning in PIL
    with pytest.raises(DataError, match=f"{tmp_path / 'big.png'}: refused as a possible decompression bomb"):
        load_image(str(tmp_path / "big.png"), 16)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    assert load_image(str(tmp_path / "big.png"), 16).shape == (16, 16, 3)

import errno
import os
import re

import numpy as np
import pytest

from pipeline.cli import main
from tests.helpers import compose, with_key, write_params


@pytest.fixture
def params_file(tmp_path):
    return write_params(tmp_path / "conf", compose("smoke"))


def _perturb(factor, source, target, params_file):
    return main(
        ["perturb", "--factor", factor, "--input", str(source), "--output", str(target), "--params", str(params_file)]
    )


def test_perturb_writes_the_same_shape_and_dtype(digits, tmp_path, params_file):
    np.save(tmp_path / "in.npy", digits[0][:10])
    assert _perturb("thin", tmp_path / "in.npy", tmp_path / "out.npy", params_file) == 0
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (10, 28, 28) and out.dtype == np.uint8
    assert (out > 127).sum() < (digits[0][:10] > 127).sum()


def test_perturb_follows_the_params_file(digits, tmp_path):
    np.save(tmp_path / "in.npy", digits[0][:10])
    ink = {}
    for amount in (0.3, 0.7):
        path = write_params(tmp_path / str(amount), with_key(compose("smoke"), "perturb.thin.amount", amount))
        assert _perturb("thin", tmp_path / "in.npy", tmp_path / f"{amount}.npy", path) == 0
        ink[amount] = (np.load(tmp_path / f"{amount}.npy") > 127).sum()
    assert ink[0.7] < ink[0.3] < (digits[0][:10] > 127).sum()


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 28, 28), np.float32), "expected dtype uint8"),
        (np.zeros((4, 32, 32), np.uint8), r"expected shape \(N, 28, 28\)"),
        (np.zeros((28, 28), np.uint8), r"expected shape \(N, 28, 28\)"),
    ],
)
def test_perturb_rejects_wrong_input(tmp_path, capsys, params_file, array, message):
    np.save(tmp_path / "in.npy", array)
    assert _perturb("swell", tmp_path / "in.npy", tmp_path / "o.npy", params_file) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert re.search(message, err)
    assert not (tmp_path / "o.npy").exists()


def test_perturb_reports_missing_input(tmp_path, capsys, params_file):
    assert _perturb("thin", tmp_path / "nope.npy", tmp_path / "o.npy", params_file) == 2
    assert "no such file" in capsys.readouterr().err


def test_perturb_reports_a_missing_params_file(digits, tmp_path, capsys):
    np.save(tmp_path / "in.npy", digits[0][:10])
    assert _perturb("thin", tmp_path / "in.npy", tmp_path / "o.npy", tmp_path / "nope.yaml") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"{tmp_path / 'nope.yaml'}: not found" in err
    assert not (tmp_path / "o.npy").exists()


def test_perturb_rejects_unknown_factor(tmp_path, params_file):
    with pytest.raises(SystemExit):
        _perturb("blur", tmp_path / "x.npy", tmp_path / "y.npy", params_file)


def test_check_params(tmp_path, capsys, monkeypatch):
    write_params(tmp_path, compose("smoke"))
    monkeypatch.chdir(tmp_path)  # the default is params.yaml in the working directory
    assert main(["check-params"]) == 0
    assert "valid (profile smoke" in capsys.readouterr().err
    bad = write_params(tmp_path / "bad", with_key(compose("smoke"), "data.sourse", "mnist"))
    assert main(["check-params", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "unknown key 'data.sourse'" in err


READS = "rgf perturb reads only a .npy file holding an (N, 28, 28) uint8 array"


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if a perturbation runs: every check comes first."""

    def perturbed(*args, **kwargs):
        raise AssertionError("perturbed before the checks refused")

    monkeypatch.setattr("pipeline.cli.perturb", perturbed)


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and err.strip().count("\n") == 0, err
    return err


def _write_npz(path):
    np.savez(path, a=np.zeros((2, 28, 28), np.uint8))


def _write_object_array(path):
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _write_text(path):
    path.write_text("0 0 0\n1 1 1\n")


def _write_truncated(path):
    np.save(path, np.zeros((50, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize(
    "name, make, says",
    [
        ("in.npz", _write_npz, "a .npz archive"),
        ("in", lambda p: p.mkdir(), "a folder"),
        ("in.npy", _write_text, "not a .npy file"),
        ("in.txt", _write_text, "not a .npy file"),
        ("in.npy", _write_object_array, "holds Python objects (pickled), not numbers"),
        ("in.npy", _write_truncated, "not a readable .npy array"),
    ],
)
def test_perturb_reads_only_a_npy_of_digits(tmp_path, capsys, params_file, no_work, name, make, says):
    make(tmp_path / name)
    before = sorted(tmp_path.iterdir())
    assert _perturb("thin", tmp_path / name, tmp_path / "o.npy", params_file) == 2
    err = _one_error(capsys)
    assert err.startswith(f"error: {tmp_path / name}: {says}") and err.count(READS) == 1
    assert "pickled" not in err or make is _write_object_array
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "output, says",
    [
        ("outdir", "--output {out}: a folder; name the .npy file to write, e.g. {out}/digits.npy"),
        ("thin.txt", "--output {out}: must end in .npy (numpy would write {out}.npy instead)"),
        ("thin", "--output {out}: must end in .npy (numpy would write {out}.npy instead)"),
        ("missing/thin.npy", "--output {out}: no folder {folder}; create it first"),
    ],
)
def test_perturb_checks_the_output_before_any_work(digits, tmp_path, capsys, params_file, no_work, output, says):
    np.save(tmp_path / "in.npy", digits[0][:10])
    (tmp_path / "outdir").mkdir()
    before = sorted(tmp_path.rglob("*"))
    out = tmp_path / output
    assert _perturb("thin", tmp_path / "in.npy", out, params_file) == 2
    assert says.format(out=out, folder=out.parent) in _one_error(capsys)
    assert sorted(tmp_path.rglob("*")) == before


def test_perturb_prints_the_path_it_wrote(digits, tmp_path, capsys, params_file):
    np.save(tmp_path / "in.npy", digits[0][:10])
    (tmp_path / "out.npy").write_bytes(b"an older output")
    assert _perturb("thin", tmp_path / "in.npy", tmp_path / "out.npy", params_file) == 0
    assert f"thin: 10 digits -> {tmp_path / 'out.npy'}" in capsys.readouterr().err
    assert np.load(tmp_path / "out.npy").shape == (10, 28, 28)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf", "in.npy", "out.npy"]


def test_a_full_disk_leaves_the_old_output_whole(digits, tmp_path, capsys, params_file, monkeypatch):
    np.save(tmp_path / "in.npy", digits[0][:10])
    np.save(tmp_path / "out.npy", digits[0][10:20])
    old = (tmp_path / "out.npy").read_bytes()

    def full_disk(file, arr, **kwargs):
        # writes part of the array, then the disk is full
        f = open(file, "wb") if isinstance(file, str | os.PathLike) else file
        f.write(b"\x93NUMPY, cut short")
        f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    assert _perturb("thin", tmp_path / "in.npy", tmp_path / "out.npy", params_file) == 2
    out = tmp_path / "out.npy"
    assert f"{out}: could not be written (No space left on device); the old file is unchanged" in _one_error(capsys)
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf", "in.npy", "out.npy"]


def test_perturb_refuses_a_seed_numpy_and_torch_cannot_take(capsys):
    for seed in ("-1", str(2**32)):
        with pytest.raises(SystemExit) as info:
            main(["perturb", "--factor", "thin", "--input", "x.npy", "--output", "y.npy", "--seed", seed])
        assert info.value.code == 2
        assert f"must be in 0..4294967295, got {seed}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("vae.epochs", True, "vae.epochs = True: Input should be a valid integer"),
        ("evaluation.num_samples", 1e12, "evaluation.num_samples = 1000000000000.0: Input should be a valid integer"),
        ("evaluation.num_samples", 10**12, "evaluation.num_samples = 1000000000000: Input should be less than or"),
        ("seed", 2**70, "seed = 1180591620717411303424: Input should be less than or equal to 4294967295"),
        ("data.train_size", 10**12, "data.train_size = 1000000000000: Input should be less than or equal to"),
        ("gan.batch_size", 10**9, "gan.batch_size = 1000000000: Input should be less than or equal to 16384"),
        ("device", "cuda", "device = 'cuda': Value error, no CUDA device on this machine"),
    ],
)
def test_check_params_names_each_bad_value_in_one_line(tmp_path, capsys, monkeypatch, key, value, says):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bad = write_params(tmp_path, with_key(compose("smoke"), key, value))
    assert main(["check-params", str(bad)]) == 2
    assert f"error: {bad}: {says}" in _one_error(capsys)


@pytest.mark.parametrize(
    ("command", "example", "default"),
    [
        ("perturb", "rgf perturb --factor thin", "(default: params.yaml)"),
        ("download", "rgf download --dest data/raw/mnist", "(default: data/raw/mnist)"),
        ("check-params", "rgf check-params params.yaml", "(default: params.yaml)"),
        ("report", "rgf report --metrics metrics", "(default: metrics)"),
        ("compcars-manifest", "rgf compcars-manifest /data/CompCars/sv_data", "(default: ['Volkswagen', 'Toyota'])"),
        ("standin-cars", "rgf standin-cars data/raw/standin-cars", "(default: 60)"),
    ],
)
def test_every_subcommands_help_shows_its_defaults_and_an_example(command, example, default, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    assert f"example: {example}" in out and default in out and "(default: None)" not in out

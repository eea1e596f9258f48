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

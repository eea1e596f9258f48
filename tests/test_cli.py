import numpy as np
import pytest

from pipeline.cli import main


def test_perturb_writes_the_same_shape_and_dtype(digits, tmp_path):
    np.save(tmp_path / "in.npy", digits[0][:10])
    assert (
        main(
            ["perturb", "--factor", "thin", "--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy")]
        )
        == 0
    )
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (10, 28, 28) and out.dtype == np.uint8
    assert (out > 127).sum() < (digits[0][:10] > 127).sum()


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 28, 28), np.float32), "expected dtype uint8"),
        (np.zeros((4, 32, 32), np.uint8), r"expected shape \(N, 28, 28\)"),
        (np.zeros((28, 28), np.uint8), r"expected shape \(N, 28, 28\)"),
    ],
)
def test_perturb_rejects_wrong_input(tmp_path, capsys, array, message):
    np.save(tmp_path / "in.npy", array)
    assert (
        main(["perturb", "--factor", "swell", "--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "o.npy")])
        == 2
    )
    assert capsys.readouterr().err.count("error:") == 1
    assert not (tmp_path / "o.npy").exists()


def test_perturb_reports_missing_input(tmp_path, capsys):
    assert (
        main(
            ["perturb", "--factor", "thin", "--input", str(tmp_path / "nope.npy"), "--output", str(tmp_path / "o.npy")]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err


def test_perturb_rejects_unknown_factor(tmp_path):
    with pytest.raises(SystemExit):
        main(["perturb", "--factor", "blur", "--input", "x.npy", "--output", "y.npy"])


def test_check_params(tmp_path, capsys):
    assert main(["check-params"]) == 0
    (tmp_path / "p.yaml").write_text("profile: x\nseed: 0\ndata: {source: mnist, sourse: 1}\n")
    assert main(["check-params", str(tmp_path / "p.yaml")]) == 2
    assert "unknown key 'data.sourse'" in capsys.readouterr().err

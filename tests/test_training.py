"""The training loop: resume after a kill, determinism, refusing foreign checkpoints."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import CheckpointError, ParamsError, RgfError
from pipeline.files import read_curves, write_curves
from pipeline.generative.build import build_method
from pipeline.generative.fit import log_dir, train_model
from pipeline.generative.sampling import generate
from pipeline.io import load_checkpoint
from pipeline.params import parse_params
from tests.helpers import REPO, compose, digest


class Killed(Exception):
    pass


@pytest.fixture
def data(colour_data):
    return colour_data


def _params(tmp_path, **changes):
    raw = compose("smoke")
    raw["vae"].update(epochs=4, batch_size=32, width=4, latent_dim=4)
    raw["gan"].update(epochs=2, batch_size=32, width=4, architecture="conv")
    raw["gan_sd"].update(sd_epochs=1)
    raw["train"].update(checkpoint_every=1, log_dir=str(tmp_path / "logs"))
    raw["evaluation"]["num_samples"] = 12
    for key, value in changes.items():
        section, name = key.split("__")
        raw[section][name] = value
    return parse_params(raw)


def _kill(epoch):
    raise Killed


def _weights(path):
    return load_checkpoint(path)["state"]["method"]


def test_a_killed_run_resumes_where_it_stopped_and_ends_identical(tmp_path, data):
    params = _params(tmp_path)
    whole = tmp_path / "whole" / "vae-colour" / "skewed_k1"
    curves = tmp_path / "whole" / "curves"
    train_model(params, "vae", "colour", "skewed_k1", 0, data, whole, tmp_path / "whole" / "resume", curves=curves)

    out = tmp_path / "killed" / "vae-colour" / "skewed_k1"
    resume_dir = tmp_path / "killed" / "resume"

    def kill(epoch):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_model(params, "vae", "colour", "skewed_k1", 0, data, out, resume_dir, on_epoch=kill)
    resume = list(resume_dir.glob("vae-colour-skewed_k1-s0-*.pt"))
    assert len(resume) == 1 and load_checkpoint(resume[0])["epoch"] == 2
    seen = []
    resumed_curves = tmp_path / "killed" / "curves"  # a fresh folder, as the train stage's scratch output is
    history = train_model(
        params, "vae", "colour", "skewed_k1", 0, data, out, resume_dir, on_epoch=seen.append, curves=resumed_curves
    )
    assert seen == [3, 4], "the second run must start at epoch 3"
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    # the resumed run's DVCLive curves hold all four epochs, as the uninterrupted run's do, byte for byte
    assert [row["epoch"] for row in read_curves(resumed_curves)] == [1, 2, 3, 4]
    assert digest(resumed_curves) == digest(curves)
    assert not resume[0].exists(), "a finished run drops its resume file"
    a, b = _weights(whole / "model.pt"), _weights(out / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_file_from_other_params_is_refused(tmp_path, data):
    params = _params(tmp_path)
    out = tmp_path / "m" / "vae-colour" / "skewed_k1"
    resume_dir = tmp_path / "resume"
    with pytest.raises(Killed):
        train_model(params, "vae", "colour", "skewed_k1", 0, data, out, resume_dir, on_epoch=_kill)
    resume = next(resume_dir.glob("*.pt"))
    ckpt = torch.load(resume, weights_only=True)
    ckpt["params"]["lr"] = 0.5  # as if written by another config under the same name
    torch.save(ckpt, resume)
    with pytest.raises(CheckpointError, match="made under other params .*lr.*cannot be resumed"):
        train_model(params, "vae", "colour", "skewed_k1", 0, data, out, resume_dir)


def test_sampling_refuses_a_checkpoint_from_other_params(tmp_path, data):
    params = _params(tmp_path, vae__epochs=1)
    out = tmp_path / "m" / "vae-colour" / "balanced"
    train_model(params, "vae", "colour", "balanced", 0, data, out, tmp_path / "resume")
    images = generate(params, "vae", "colour", "balanced", 0, out, 12)
    assert images.shape == (12, 28, 28, 3) and images.dtype == np.uint8
    again = generate(params, "vae", "colour", "balanced", 0, out, 12)
    assert np.array_equal(images, again)
    other = _params(tmp_path, vae__epochs=1, vae__latent_dim=8)
    with pytest.raises(CheckpointError, match="made under other params .*latent_dim") as refused:
        generate(other, "vae", "colour", "balanced", 0, out, 12)
    assert isinstance(refused.value, RgfError)  # a stage prints it as one line and exits with 2


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_channels_last_trains_the_same_math_deterministically(tmp_path, data, model):
    """train.channels_last (on by default: faster on a CPU) changes only the
    memory layout: the losses match the NCHW run's to float rounding, the same
    seed gives the same weights bit for bit, and the sample stage refuses a
    checkpoint trained under the other layout."""
    runs = {}
    for name, flag in (("nhwc", True), ("nhwc_again", True), ("nchw", False)):
        params = _params(tmp_path, train__channels_last=flag)
        out = tmp_path / name / "skewed_k1"
        runs[name] = (train_model(params, model, "colour", "skewed_k1", 0, data, out, tmp_path / name), out)
    (nhwc, out), (again, out_again), (nchw, out_nchw) = runs["nhwc"], runs["nhwc_again"], runs["nchw"]
    assert nhwc == again
    a, b = _weights(out / "model.pt"), _weights(out_again / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    convs = [k for k, w in a.items() if w.dim() == 4 and w.shape[1] > 1 and w.shape[2:] != (1, 1)]
    assert convs and all(a[k].is_contiguous(memory_format=torch.channels_last) for k in convs)
    assert not any(a[k].is_contiguous() for k in convs), "the weights were trained in NHWC"
    assert all(w.is_contiguous() for w in _weights(out_nchw / "model.pt").values())
    for row, other in zip(nhwc, nchw, strict=True):
        for key, value in other.items():
            assert row[key] == pytest.approx(value, rel=2e-3, abs=1e-5), (key, row[key], value)
    with pytest.raises(CheckpointError, match="channels_last"):
        generate(_params(tmp_path, train__channels_last=False), model, "colour", "skewed_k1", 0, out, 12)


def test_gan_history_has_the_discriminator_probe(tmp_path, data):
    params = _params(tmp_path)
    out = tmp_path / "g" / "gan_sd-colour" / "skewed_k1"
    history = train_model(params, "gan_sd", "colour", "skewed_k1", 0, data, out, tmp_path / "resume")
    assert [row["epoch"] for row in history] == [1, 2]
    for row in history:
        assert {"d_loss", "g_loss", "d_loss_k1_with", "d_loss_k1_without"} <= set(row)
        assert row["d_loss_k1_with"] > 0
    assert history[0]["sd_penalty"] > 0 and history[1]["sd_penalty"] == 0, "SD only for the first sd_epochs"
    write_curves(tmp_path / "h", history)  # DVCLive: one TSV per term, step = epoch
    tsv = tmp_path / "h" / "plots" / "metrics" / "d_loss_k1_with.tsv"
    assert tsv.read_text().splitlines()[0] == "step\td_loss_k1_with"
    assert read_curves(tmp_path / "h") == history
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["plots"], "no summary among the plots"


def test_a_code_change_is_not_resumed(tmp_path, data, monkeypatch, capsys):
    """Killed, the family's code edited, run again: it starts over and says
    so, rather than finishing the old weights with the new code."""
    import pipeline.generative.loop as loop

    params = _params(tmp_path)
    code = tmp_path / "code"
    code.mkdir()
    for path in loop.weight_code(build_method("vae", params, 28, "cpu")):
        (code / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(loop, "weight_code", lambda method: sorted(code.iterdir()))
    out, resume_dir = tmp_path / "m" / "vae-colour" / "balanced", tmp_path / "resume"

    def kill(epoch):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_model(params, "vae", "colour", "balanced", 0, data, out, resume_dir, on_epoch=kill)
    (old,) = resume_dir.glob("vae-colour-balanced-s0-*.pt")
    with (code / "vae.py").open("a") as f:
        f.write("\n# an edit\n")
    capsys.readouterr()
    seen = []
    train_model(params, "vae", "colour", "balanced", 0, data, out, resume_dir, on_epoch=seen.append)
    assert seen == [1, 2, 3, 4], "trained from epoch 1"
    assert f"vae-colour-balanced-s0: not resuming from {old}: saved under other params or by other code" in (
        capsys.readouterr().out
    )


def test_a_diverging_loss_stops_the_run_at_once(tmp_path, data):
    params = _params(tmp_path, vae__lr=10.0)
    seen = []
    with pytest.raises(ParamsError) as err:
        train_model(
            params, "vae", "colour", "balanced", 0, data, tmp_path / "m", tmp_path / "resume", on_epoch=seen.append
        )
    assert str(err.value).startswith("vae-colour-balanced-s0: loss '")
    assert str(err.value).endswith("is nan in epoch 1: training diverged; lower vae.lr (now 10.0) and re-run")
    assert seen == [] and not (tmp_path / "m").exists() and not list((tmp_path / "resume").glob("*"))


def test_each_experiment_logs_to_its_own_tensorboard_folder(monkeypatch):
    """`dvc exp run` names the experiment in DVC_EXP_NAME and the repo in
    DVC_ROOT (a queued one runs in a temporary copy): its runs' curves go
    under <repo>/logs/<experiment>/, never into an earlier experiment's runs."""
    params = parse_params(compose("smoke"))
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert log_dir(params) == Path("logs") / "workspace"
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-lamb")
    monkeypatch.setenv("DVC_ROOT", "/home/me/study")
    assert log_dir(params) == Path("/home/me/study/logs/bushy-lamb")


def test_logging_curves_prints_nothing(tmp_path):
    """DVCLive opens the DVC repository it runs in; a run's process must
    still exit without a word on stderr (dulwich once complained there)."""
    code = (
        "from pathlib import Path; from pipeline.files import Curves; "
        f"Curves(Path({str(tmp_path / 'c')!r})).log({{'epoch': 1, 'loss': 0.5}})"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("", "")
    assert read_curves(tmp_path / "c") == [{"epoch": 1.0, "loss": 0.5}]

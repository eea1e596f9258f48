"""`rgf`: the command line around the pipeline's library functions.

    rgf perturb --factor thin --input digits.npy --output thin.npy --seed 0
    rgf download --dest data/raw/mnist
    rgf check-params [params.yaml]
    rgf report [--metrics metrics]
    rgf compare [EXPERIMENT ...]
    rgf compcars-manifest /path/to/sv_data [--makes Volkswagen Toyota] [--colours black white]
    rgf standin-cars DIR [--per-cell 60]
    rgf stages [--write]
    rgf export-data --factor colour --out exported/colour [--format npz|png]
    rgf import-samples SAMPLES --model mymodel --factor colour --dataset skewed_k1 --seed 0

The stages themselves run through `dvc repro` (see dvc.yaml).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.data.mnist import MIRRORS, download_mnist
from pipeline.errors import MetricsError, RgfError
from pipeline.factors import perturb
from pipeline.io import atomic_file, check_output, check_outputs, rng_for
from pipeline.names import MORPHOLOGICAL
from pipeline.params import MAX_SEED, load_params
from pipeline.paths import METRICS_GLOB, RARITY
from pipeline.registry import CONTROLS, display
from pipeline.stages import console, run

READS = "rgf perturb reads only a .npy file holding an (N, 28, 28) uint8 array"


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy file's header, without reading the array;
    anything but a .npy file of numbers is an RgfError saying what it is."""
    if not path.exists():
        raise RgfError(f"{path}: no such file; {READS}")
    if path.is_dir():
        raise RgfError(f"{path}: a folder; {READS}")
    try:
        with path.open("rb") as f:
            magic = f.read(6)
            if magic == b"\x93NUMPY":
                f.seek(0)
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
    except OSError as err:
        raise RgfError(f"{path}: cannot be read ({err.strerror or err})") from None
    except ValueError as err:  # a corrupt header
        raise RgfError(f"{path}: not a readable .npy file ({err}); {READS}") from None
    if magic[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip
        raise RgfError(f"{path}: a .npz archive (several arrays); np.save the one you want; {READS}")
    if magic != b"\x93NUMPY":
        raise RgfError(f"{path}: not a .npy file; {READS}")
    if dtype.hasobject:
        raise RgfError(f"{path}: holds Python objects (pickled), not numbers; {READS}")
    return shape, dtype


def _check_grey_digits(path: Path) -> None:
    """The .npy header says (N, 28, 28) uint8, or an RgfError."""
    shape, dtype = _npy_header(path)
    if len(shape) != 3 or shape[1:] != (28, 28):
        raise RgfError(f"{path}: expected shape (N, 28, 28), got {shape}; {READS}")
    if dtype != np.uint8:
        raise RgfError(f"{path}: expected dtype uint8 (grey levels 0..255), got {dtype}; {READS}")


def read_grey_digits(path: Path) -> np.ndarray:
    """An (N, 28, 28) uint8 array from a .npy file, or a clear RgfError; the
    header is checked before the array is read."""
    _check_grey_digits(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # a truncated file
        raise RgfError(f"{path}: not a readable .npy array ({err}); {READS}") from None


def _check_output(out: Path) -> None:
    """The output is a .npy file in an existing folder (numpy would silently
    append .npy to any other name, and a missing folder would fail only after
    the work)."""
    if out.is_dir():
        raise RgfError(f"--output {out}: a folder; name the .npy file to write, e.g. {out / 'digits.npy'}")
    if out.suffix != ".npy":
        raise RgfError(f"--output {out}: must end in .npy (numpy would write {out}.npy instead)")
    if not out.parent.is_dir():
        raise RgfError(f"--output {out}: no folder {out.parent}; create it first")


@contextmanager
def _scratch_beside(out: Path) -> Iterator[Path]:
    """A file beside `out`, created now (so an unwritable folder fails before
    any work) and removed on leaving unless renamed onto `out`."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        tmp.open("wb").close()
    except OSError as err:
        raise RgfError(f"--output {out}: cannot write in {out.parent} ({err.strerror or err})") from None
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _save_replacing(array: np.ndarray, tmp: Path, out: Path) -> None:
    """Write `array` to `tmp`, then rename it onto `out`: `out` is never
    truncated, so on any failure (a full disk) the old file stays whole."""
    try:
        with tmp.open("wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as err:
        kept = "the old file is unchanged" if out.exists() else "nothing was written"
        raise RgfError(f"{out}: could not be written ({err.strerror or err}); {kept}") from None


def _perturb(args: argparse.Namespace) -> None:
    check_output(args.output, [args.input, args.params], name="--output")
    _check_output(args.output)
    params = load_params(args.params).perturb
    _check_grey_digits(args.input)  # every check before any work
    with _scratch_beside(args.output) as tmp:
        images = read_grey_digits(args.input)
        out = np.empty_like(images)
        size = params.chunk_size
        for i in range(0, len(images), size):
            # one generator per fixed-size chunk, as in the prepare stage
            rng = rng_for(args.seed, "perturb", args.factor, i // size)
            out[i : i + size] = perturb(args.factor, images[i : i + size], params, rng)
        _save_replacing(out, tmp, args.output)
    console.print(f"{args.factor}: {len(out)} digits -> {args.output}")


def _download(args: argparse.Namespace) -> None:
    check_output(args.dest, name="--dest")
    if args.dest.exists() and not args.dest.is_dir():
        raise RgfError(f"--dest {args.dest}: a file; give a folder for the four .gz files")
    path = download_mnist(args.dest, mirrors=args.mirror or MIRRORS)
    console.print(f"MNIST files verified in {path}")


def _check_params(args: argparse.Namespace) -> None:
    params = load_params(args.path)
    console.print(f"{args.path}: valid (profile {params.profile}, factors {', '.join(params.factors)})")


def _report(args: argparse.Namespace) -> None:
    from pipeline.evaluation.report import print_report

    if not args.metrics.is_dir():
        raise MetricsError(f"--metrics {args.metrics}: no such folder; run the evaluate stages first (dvc repro)")
    if not any(args.metrics.glob(METRICS_GLOB)):
        raise MetricsError(
            f"--metrics {args.metrics}: no metrics files (<model>/<factor>/k<k>-s<seed>.json); "
            "give a study's metrics folder, or run the evaluate stages first (dvc repro)"
        )
    # the default params.yaml is optional; a --params given must exist
    path = args.params or Path("params.yaml")
    print_report(args.metrics, params=load_params(path, stored=True) if args.params or path.exists() else None)


def _rarity(args: argparse.Namespace) -> None:
    from pipeline.evaluation.experiments import check_design, collect, merged, spanning
    from pipeline.evaluation.rarity import kept_metrics, write_curve

    reference = load_params(args.params)
    check_outputs({args.out: RARITY})
    check_design(args.out, reference)
    if (args.out / "curve.csv").exists() and not (args.out / "params.yaml").exists() and not args.replace:
        raise RgfError(
            f"--out {args.out}: holds a curve that does not say its design (no params.yaml); "
            "give --replace to replace it, or another --out"
        )
    collected, used, notes = collect(args.repo, reference)
    kept = kept_metrics(args.out)
    metrics = merged(kept, collected)
    if not metrics:
        raise MetricsError(
            f"{args.repo}: no DVC experiment of this study's design has metrics, and {args.out} keeps no runs; "
            "run the sweep first (`dvc exp run -S 'skew.rare_fractions=[0,0.05,0.5]'`; "
            "README: the rarity curve)"
        )
    table, null = write_curve(metrics, args.out, used, notes, spanning(reference, metrics))
    fractions = ", ".join(f"{r:g}" for r in sorted(table["rare_fraction"].unique()))
    console.print(
        f"{len(metrics)} comparisons (r = {fractions}): {len(collected)} from {used} experiments, "
        f"{len(metrics) - len(collected)} kept from earlier slices -> {args.out}"
    )
    for note in notes:
        console.print(f"  {note}", highlight=False)
    for row in null.itertuples():
        if row.within is False and row.model not in {display(c) for c in CONTROLS}:
            console.print(
                f"[yellow]r = 0.5:[/] {row.model} ({row.factor}) under {row.test} flags "
                f"{row.flagged}/{row.tested} classes, "
                f"more than the learner's false-positive rate (upper {row.learner_fp_upper:.3f}) gives: "
                f"p = {row.p_value:.3g}",
                highlight=False,
            )


def _paper(args: argparse.Namespace) -> None:
    from pipeline.evaluation.paper import check_out, compare, load_paper, write_comparison
    from pipeline.files import load_metrics

    check_out(args.out)
    if not args.metrics.is_dir():
        raise MetricsError(f"--metrics {args.metrics}: no such folder; give a study's metrics folder")
    tables = load_paper(args.paper)
    summary, cells = compare(load_metrics(args.metrics), tables, args.verdict, args.classes, str(args.metrics))
    write_comparison(args.out, summary, cells)
    a = summary["agreement"]
    kappa = "–" if a["kappa"] is None else f"{a['kappa']:.2f}"
    console.print(
        f"{a['agree']}/{a['compared']} cells agree with the paper's Table 4 (kappa {kappa}, "
        f"{a['undefined']} undefined) -> {args.out}",
        highlight=False,
    )


def _compare(args: argparse.Namespace) -> None:
    import json
    import subprocess
    import sys

    from rich.console import Console

    from pipeline.evaluation.compare import compare
    from pipeline.evaluation.report import rich_tables

    if not (args.repo / "dvc.yaml").is_file():
        raise RgfError(f"--repo {args.repo}: no dvc.yaml; give the study's folder")
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json", "--no-fetch"]
    cmd += ["--all-commits"] if args.experiments else []  # an experiment named may sit on an older commit
    done = subprocess.run(cmd, cwd=args.repo, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RgfError(f"`dvc exp show --json` failed in {args.repo}: {last}")
    table = compare(json.loads(done.stdout or "[]"), args.experiments)
    out = Console()
    for part in rich_tables(table, "Experiments (per model: classes learned/memorized, FD)", out.width):
        out.print(part)


def _export_data(args: argparse.Namespace) -> None:
    from pipeline.data.export import export_sets

    params = load_params(args.params)
    params.check_factor(args.factor)
    data = args.data or Path("data") / args.factor
    record = export_sets(data, params.datasets, args.out, args.format, params.evaluation.num_samples, params.seeds)
    sets = ", ".join(f"{name} ({d['count']})" for name, d in record["datasets"].items())
    console.print(f"{args.factor}: {sets} -> {args.out} ({args.format}; export.json says how to bring samples back)")


def _import_samples(args: argparse.Namespace) -> None:
    from pipeline.generative import imported

    check_output(args.into, [args.source, args.params], name="--into")
    params = load_params(args.params)
    imported.check_name(args.model)
    if args.factor not in params.factors:
        raise RgfError(f"--factor {args.factor}: not a factor of this study; choose one of {params.factors}")
    params.check_seed(args.seed)
    if args.dataset not in params.datasets:
        raise RgfError(f"--dataset {args.dataset}: not a training set of this study; choose one of {params.datasets}")
    target = imported.import_path(args.into, args.model, args.factor, args.dataset, args.seed)
    if target.exists() and not args.replace:
        raise RgfError(f"{target}: already imported; give --replace to replace it")
    images = imported.load_samples(args.source, params.image_size, params.evaluation.num_samples)
    imported.save_samples(target, images)
    models = params.models if args.model in params.models else [*params.models, args.model]
    names = params.imported if args.model in params.imported else [*params.imported, args.model]
    console.print(f"{args.source}: {len(images)} samples -> {target}", highlight=False, markup=False)
    console.print(
        f"judge them: dvc exp run -S 'imported=[{','.join(names)}]' -S 'models=[{','.join(models)}]' "
        "(once every dataset and seed of the study has its samples)",
        highlight=False,
        markup=False,
    )


def _stages(args: argparse.Namespace) -> None:
    from pipeline import dvcstages

    root = args.repo
    if not (root / "dvc.yaml").is_file():
        raise RgfError(f"{root}: no dvc.yaml; run from the project's root or give --repo")
    if args.write:
        changed = dvcstages.write(root)
        console.print(f"{root / 'dvc.yaml'}: per-model stage groups {'rewritten' if changed else 'already in step'}")
        return
    problems = dvcstages.drift(root)
    for problem in problems:
        console.print(f"dvc.yaml: {problem}", highlight=False)
    if problems:
        raise RgfError("dvc.yaml's per-model stage groups drifted from pipeline/registry.py; run `rgf stages --write`")
    console.print("dvc.yaml's per-model stage groups follow pipeline/registry.py")


def _reference(args: argparse.Namespace):
    """The study's params: --params, or --profile composed from conf/ as `dvc exp run -S profile=...` would."""
    if args.profile is None:
        return load_params(args.params)
    import tempfile

    from dvc.utils.hydra import compose_and_dump

    from pipeline.registry import register_resolver

    if not (Path("conf") / "profile" / f"{args.profile}.yaml").is_file():
        raise RgfError(f"--profile {args.profile}: no conf/profile/{args.profile}.yaml; run from the project's root")
    register_resolver()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        compose_and_dump(path, str(Path("conf").resolve()), None, "config", "", [f"profile={args.profile}"])
        return load_params(path)


def _assemble(args: argparse.Namespace) -> None:
    from pipeline.evaluation.experiments import assemble

    now, total, notes = assemble(args.repo, _reference(args), args.out)
    console.print(f"{now} runs collected from experiments, {total} in {args.out}/metrics; report -> {args.out}/tables")
    for note in notes:
        console.print(f"  {note}", highlight=False)


def _compcars_manifest(args: argparse.Namespace) -> None:
    from pipeline.data.compcars import compcars_manifest

    out = args.out or args.sv_data / "manifest.csv"
    check_outputs(files=[out])
    if not out.parent.is_dir():
        raise RgfError(f"--out {out}: no folder {out.parent}; create it first")
    table = compcars_manifest(args.sv_data, args.makes, args.colours, not args.all_images, args.seed)
    with atomic_file(out) as tmp:
        table.to_csv(tmp, index=False)
    counts = table.groupby(["make", "colour"]).size().to_dict()
    console.print(f"{len(table)} images -> {out}: " + ", ".join(f"{m} {c} {n}" for (m, c), n in counts.items()))


def _standin_cars(args: argparse.Namespace) -> None:
    from pipeline.data.standin import write_standin

    if args.per_cell < 1:
        raise RgfError(f"--per-cell {args.per_cell}: must be at least 1 (images per make x colour)")
    manifest = write_standin(args.folder, args.per_cell, args.seed)
    console.print(f"stand-in cars ({args.per_cell} per make x colour) -> {manifest}")


def _seed(text: str) -> int:
    seed = int(text)
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in 0..{MAX_SEED}, got {seed}")
    return seed


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after every option's help (where there is one), examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def _command(sub, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=summary, description=summary, epilog=f"example:\n  {example}", formatter_class=_Help
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rgf",
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=_Help,
    )
    sub = p.add_subparsers(dest="command", required=True)

    pt = _command(
        sub,
        "perturb",
        "apply a Morpho-MNIST perturbation to an (N, 28, 28) uint8 .npy",
        "rgf perturb --factor thin --input digits.npy --output thin.npy --seed 0",
    )
    pt.add_argument("--factor", required=True, choices=MORPHOLOGICAL, help="the perturbation")
    pt.add_argument("--input", required=True, type=Path, help="(N, 28, 28) uint8 grey digits, .npy")
    pt.add_argument("--output", required=True, type=Path, help="where to write the perturbed digits, .npy")
    pt.add_argument("--seed", type=_seed, default=0, help=f"0..{MAX_SEED}")
    pt.add_argument("--params", type=Path, default=Path("params.yaml"), help="perturbation settings (perturb.*)")
    pt.set_defaults(func=_perturb)

    dl = _command(
        sub, "download", "fetch the four MNIST files with md5 verification", "rgf download --dest data/raw/mnist"
    )
    dl.add_argument("--dest", type=Path, default=Path("data/raw/mnist"), help="folder for the four .gz files")
    dl.add_argument("--mirror", action="append", help="base URL to try (repeatable; default: the published mirrors)")
    dl.set_defaults(func=_download)

    cp = _command(sub, "check-params", "validate a params file", "rgf check-params params.yaml")
    cp.add_argument("path", nargs="?", type=Path, default=Path("params.yaml"), help="the params file")
    cp.set_defaults(func=_check_params)

    rp = _command(
        sub, "report", "print the study's tables (from metrics/) in the terminal", "rgf report --metrics metrics"
    )
    rp.add_argument("--metrics", type=Path, default=Path("metrics"), help="the metrics folder")
    rp.add_argument("--params", type=Path, help="keep to this study (default: params.yaml, if it exists)")
    rp.set_defaults(func=_report)

    ra = _command(
        sub,
        "rarity",
        "collect the experiments of a sweep of skew.rare_fractions into the rarity curve",
        "rgf rarity --out reports/rarity",
    )
    ra.add_argument("--repo", type=Path, default=Path("."), help="the study's DVC repository")
    ra.add_argument("--params", type=Path, default=Path("params.yaml"), help="the design experiments must share")
    ra.add_argument("--out", type=Path, default=Path("reports/rarity"), help="folder for curve.png, curve.csv, ...")
    ra.add_argument("--replace", action="store_true", help="replace a curve written before curves recorded params.yaml")
    ra.set_defaults(func=_rarity)

    pa = _command(
        sub,
        "paper",
        "compare a study's verdicts and z with the paper's published Tables 1, 2 and 4, cell by cell",
        "rgf paper --metrics reports/survey/metrics --out reports/survey/paper",
    )
    pa.add_argument("--metrics", type=Path, required=True, help="the study's metrics folder")
    pa.add_argument("--paper", type=Path, default=Path("references/haider2025"), help="the paper's tables (CSV)")
    pa.add_argument("--out", type=Path, required=True, help="folder for comparison.json, cells.csv, README.md")
    pa.add_argument(
        "--verdict", default="verdict", help="the class rows' verdict to compare (verdicts.<test>: one test's)"
    )
    pa.add_argument(
        "--classes", default="classes", help="the files' class rows to compare (classes_filtered: the filtered view)"
    )
    pa.set_defaults(func=_paper)

    co = _command(
        sub,
        "compare",
        "experiments side by side on one screen: changed params, L/M and FD per model, the learner's FP rate",
        "rgf compare main my-experiment",
    )
    co.add_argument("experiments", nargs="*", help="experiment names, branches or commits (default: every one)")
    co.add_argument("--repo", type=Path, default=Path("."), help="the study's DVC repository")
    co.set_defaults(func=_compare)

    sv = _command(
        sub,
        "assemble",
        "put a study run in slices (DVC experiments) together: its metrics, reads and report",
        "rgf assemble --profile survey --out reports/survey",
    )
    sv.add_argument("--repo", type=Path, default=Path("."), help="the study's DVC repository")
    study = sv.add_mutually_exclusive_group(required=True)
    study.add_argument("--profile", help="the study: a profile of conf/profile/, composed as `-S profile=` would")
    study.add_argument("--params", type=Path, help="the study: a params file")
    sv.add_argument(
        "--out", type=Path, required=True, help="folder for params.yaml, metrics/, reads/, tables/, summary.json"
    )
    sv.set_defaults(func=_assemble)

    cc = _command(
        sub,
        "compcars-manifest",
        "write manifest.csv for the paper's CompCars subset",
        "rgf compcars-manifest /data/CompCars/sv_data --makes Volkswagen Toyota --colours black white",
    )
    cc.add_argument("sv_data", type=Path, help="the release's surveillance folder (sv_data)")
    cc.add_argument("--makes", nargs="+", default=["Volkswagen", "Toyota"], help="makes to keep, the rare one first")
    cc.add_argument("--colours", nargs="+", default=["black", "white"], help="colours to keep: (absent, present)")
    cc.add_argument("--all-images", action="store_true", help="keep every image (default: even make split)")
    cc.add_argument("--seed", type=int, default=0, help="seed of the even make split")
    cc.add_argument("--out", type=Path, help="default: <sv_data>/manifest.csv")
    cc.set_defaults(func=_compcars_manifest)

    sc = _command(
        sub,
        "standin-cars",
        "write synthetic two-make car images + manifest (a CompCars stand-in)",
        "rgf standin-cars data/raw/standin-cars --per-cell 60",
    )
    sc.add_argument("folder", type=Path, help="where to write image/ and manifest.csv")
    sc.add_argument("--per-cell", type=int, default=60, help="images per make x colour")
    sc.add_argument("--seed", type=int, default=0, help="seed of the drawings")
    sc.set_defaults(func=_standin_cars)

    ex = _command(
        sub,
        "export-data",
        "write a factor's training sets (images only) for a model trained outside rgf",
        "rgf export-data --factor colour --out exported/colour --format png",
    )
    ex.add_argument("--factor", required=True, help="one of the study's factors")
    ex.add_argument("--data", type=Path, help="the prepared data (default: data/<factor>)")
    ex.add_argument("--out", type=Path, required=True, help="an empty or new folder (or an earlier export)")
    ex.add_argument("--format", choices=("npz", "png"), default="npz", help="one .npz per set, or PNG folders")
    ex.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params")
    ex.set_defaults(func=_export_data)

    im = _command(
        sub,
        "import-samples",
        "check an outside model's samples of one run and keep them for the `imported` stage",
        "rgf import-samples samples.npz --model mymodel --factor colour --dataset skewed_k1 --seed 0",
    )
    im.add_argument("source", type=Path, help="an .npz, an .npy or a folder of PNGs: (M, S, S, 3) images")
    im.add_argument("--model", required=True, help="your model's name (lower-case letters, digits, _)")
    im.add_argument("--factor", required=True, help="the factor whose sets it was trained on")
    im.add_argument("--dataset", required=True, help="the set it was trained on: balanced or skewed_k<k>[_r<percent>]")
    im.add_argument("--seed", required=True, type=int, help="the replicate: one of the study's seeds")
    im.add_argument("--into", type=Path, default=Path("imports"), help="where imported samples are kept")
    im.add_argument("--replace", action="store_true", help="replace samples imported before for this run")
    im.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params")
    im.set_defaults(func=_import_samples)

    st = _command(
        sub,
        "stages",
        "check (or --write) dvc.yaml's per-model train and sample groups against the model registry",
        "rgf stages --write",
    )
    st.add_argument("--repo", type=Path, default=Path("."), help="the project's root (with dvc.yaml)")
    st.add_argument("--write", action="store_true", help="rewrite the groups between dvc.yaml's marker lines")
    st.set_defaults(func=_stages)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda _: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())

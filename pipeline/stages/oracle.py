"""Stage `oracle@<factor>`: train the label and factor oracles of one factor.

Both CNNs (section 5.2) learn from the balanced training split only and are
scored on the test split, where every test digit appears without and with the
factor. Their per-epoch loss and training accuracy are DVCLive curves in
<curves>/<target>/. The accuracy gate is enforced where the oracles are used
(`pipeline.oracle.fit.load_oracles`), so the numbers are written even when an
oracle falls short.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.data.datasets import load_dataset
from pipeline.errors import DataError
from pipeline.files import write_curves
from pipeline.names import BALANCED, TARGETS
from pipeline.oracle.fit import fit_oracles, save_oracles, score_oracles
from pipeline.paths import ORACLE_CURVES, ORACLES
from pipeline.stages import claim, console, exit_with, outputs, parser, read_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--factor", required=True)
    p.add_argument("--data", required=True, type=Path, help="data/<factor>")
    p.add_argument("--out", required=True, type=Path, help="models/oracles/<factor>")
    p.add_argument("--metrics", required=True, type=Path, help="metrics/oracles/<factor>.json")
    p.add_argument("--curves", required=True, type=Path, help="plots/oracles/<factor> (DVCLive, per epoch)")
    args = p.parse_args(argv)
    folders = {args.out: ORACLES, args.curves: ORACLE_CURVES}
    claim(folders, [args.metrics], inputs=[args.data, args.params])
    params, started = read_params(args.params, f"oracle@{args.factor}")
    params.check_factor(args.factor)
    train = load_dataset(args.data / BALANCED)
    test = load_dataset(args.data / "test")
    if len(train.labels) == 0 or len(test.labels) == 0:
        raise DataError(f"{args.data}: empty balanced or test split; rebuild with `dvc repro prepare@{args.factor}`")
    start = time.perf_counter()
    models, histories = fit_oracles(args.params, params, args.factor, args.data)
    metrics = score_oracles(models, args.factor, train, test, params)
    with outputs(started, folders, [args.metrics]) as (out, curves, metrics_file):
        save_oracles(out, models, args.factor, train, params, args.data)
        for target, history in histories.items():
            write_curves(curves / target, history)
        metrics.write(metrics_file)
    elapsed = time.perf_counter() - start

    opts = params.oracle
    acc = {t: getattr(metrics, t).accuracy for t in TARGETS}
    if not metrics.passed:
        low = ", ".join(f"{t} {acc[t]:.4f}" for t in TARGETS if acc[t] < opts.min_accuracy)
        console.print(
            f"[bold red]warning:[/] oracle@{args.factor}: {low} below oracle.min_accuracy {opts.min_accuracy}; "
            "the evaluate stage will refuse these oracles (raise oracle.epochs or use more data)",
            highlight=False,
        )
    print(
        f"oracle@{args.factor}: label {acc['label']:.4f}, factor {acc['factor']:.4f} on {len(test.labels)} test "
        f"images ({opts.epochs} epochs, {len(train.labels)} train) in {elapsed:.1f} s -> {args.out}"
    )


if __name__ == "__main__":
    exit_with(main)

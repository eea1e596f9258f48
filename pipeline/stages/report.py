"""Stage `report`: the paper's tables from metrics/, as Markdown and CSV.

Writes --out/README.md (every table, what L/M/O mean, which test produced
them, the test's calibration on the controls and the runs' quality) and one
CSV per table: z_k<k>, summary, proportions_k<k>, false_positives, quality;
--plot-data, the z-per-class bars and discriminator-probe curves that
`dvc plots show` draws (plot definitions: dvc.yaml); --summary, the headline
numbers `dvc exp show` lists. Only the study params.yaml describes is
reported (see pipeline/evaluation/report.py).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.evaluation.report import study_report, write_plot_data, write_report
from pipeline.files import load_metrics
from pipeline.io import write_json
from pipeline.paths import PLOT_DATA, TABLES
from pipeline.stages import claim, exit_with, outputs, parser, read_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--metrics", required=True, type=Path, help="metrics")
    p.add_argument("--plots", required=True, type=Path, help="plots/train (training histories, probe figures)")
    p.add_argument("--out", required=True, type=Path, help="reports/tables")
    p.add_argument("--summary", required=True, type=Path, help="reports/summary.json")
    p.add_argument("--plot-data", required=True, type=Path, help="reports/plots")
    args = p.parse_args(argv)
    folders = {args.out: TABLES, args.plot_data: PLOT_DATA}
    claim(folders, [args.summary], inputs=[args.metrics, args.plots, args.params])
    params, started = read_params(args.params, "report")
    report = study_report(load_metrics(args.metrics), params, str(args.metrics))
    with outputs(started, folders, [args.summary]) as (tables, plot_data, summary):
        r = report.rare_fraction
        write_report(tables, report.readme, report.tables, args.plots, report.rare_classes, report.runs, r)
        write_plot_data(plot_data, report.metrics, args.plots, report.rare_classes, report.runs, r)
        write_json(summary, report.summary)
    print(f"report: {len(report.metrics)} metrics files, {len(report.tables)} tables -> {args.out}")


if __name__ == "__main__":
    exit_with(main)

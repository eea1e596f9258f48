"""`rgf compare`: experiments side by side on one screen.

`dvc exp show` prints every param and every leaf of reports/summary.json, a
few hundred columns. A researcher comparing experiments wants the params
they changed and, per model, the verdict counts and FD. This reads DVC's own
view (`dvc exp show --json`, passed in as parsed JSON) and keeps exactly
that: one row per experiment; the params whose values differ among the rows
shown (three at most, then how many more); one column per model, `L/M FD`
(classes learned / memorized under the study's test, and the FD of its
samples); and the learner control's false-positive rate.
"""

from __future__ import annotations

import pandas as pd

from pipeline.errors import RgfError
from pipeline.registry import display

SUMMARY = "reports/summary.json"
SHOWN_PARAMS = 3
PARAMS_WIDTH = 34  # the changed-params column, in characters
VALUE_WIDTH = 14  # a longer value is cut ("[balanced,ske…"): the key says what changed


def entries(show: list[dict]) -> list[tuple[str, dict]]:
    """(name, data) of every baseline commit and experiment in `dvc exp show --json`."""
    out = []
    for baseline in show:
        if baseline.get("data"):
            rev = baseline["rev"]
            out.append((baseline.get("name") or (rev if rev == "workspace" else rev[:7]), baseline["data"]))
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("data"):
                    out.append((rev.get("name") or rev["rev"][:7], rev["data"]))
    return out


def _flat(node: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _params(data: dict) -> dict[str, object]:
    return _flat(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})


def _summary(data: dict) -> dict:
    return ((data.get("metrics") or {}).get(SUMMARY) or {}).get("data") or {}


def _text(value: object) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _changed(params: dict[str, object], keys: list[str]) -> str:
    """`key=value, ...` of the first changed keys (a key by its last two
    parts, a long value cut), as many as fit PARAMS_WIDTH, then how many more."""
    shown: list[str] = []
    for n, key in enumerate(keys):
        value = _text(params.get(key, "–"))
        value = value if len(value) <= VALUE_WIDTH else value[: VALUE_WIDTH - 1] + "…"
        item = f"{'.'.join(key.split('.')[-2:])}={value}"
        rest = len(keys) - n - 1
        if n >= SHOWN_PARAMS or len(", ".join([*shown, item])) + (len(f" +{rest} more") if rest else 0) > PARAMS_WIDTH:
            return ", ".join(shown) + f" +{len(keys) - n} more" if shown else f"{len(keys)} params"
        shown.append(item)
    return ", ".join(shown) or "–"


def compare(show: list[dict], names: list[str]) -> pd.DataFrame:
    """The rows of `names` (experiment names, `workspace`, a branch or a
    commit's first 7 characters; all experiments when empty) as one table."""
    known = entries(show)
    if names:
        missing = [n for n in names if not any(name == n or name.startswith(n) for name, _ in known)]
        if missing:
            found = ", ".join(name for name, _ in known) or "none"
            raise RgfError(f"no experiment {', '.join(missing)}; `dvc exp list` names them (here: {found})")
        chosen = [next((name, data) for name, data in known if name == n or name.startswith(n)) for n in names]
    else:
        chosen = known
    if not chosen:
        raise RgfError("no experiments to compare: run one first (`dvc exp run`)")
    params = {name: _params(data) for name, data in chosen}
    keys = sorted({k for p in params.values() for k in p})
    changed = [k for k in keys if len({_text(p.get(k)) for p in params.values()}) > 1]
    models = []
    for _, data in chosen:
        models += [m for m in _summary(data).get("models", {}) if m not in models]
    rows = []
    for name, data in chosen:
        row = {"experiment": name}
        row["changed params"] = _changed(params[name], changed)
        summary = _summary(data)
        for model in models:
            s = summary.get("models", {}).get(model)
            fd = f" {s['fd']:.0f}" if s and s.get("fd") is not None else ""
            row[display(model)] = f"{s['learned']}/{s['memorized']}{fd}" if s else "–"
        fp = (summary.get("learner_fp_rate") or {}).get("one_sample")
        row["learner FP"] = "–" if fp is None else f"{fp:.0%}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("experiment")

"""Registers the resolvers conf/config.yaml uses, so that Hydra composes
`runs` from `models` and `factors`, and `datasets` and `skews` from `skew`. DVC imports every module under
hydra_plugins/ at the repository's root (its `hydra.plugins_path`) before it
composes params.yaml for `dvc exp run -S ...`."""

from pipeline.registry import register_resolver

register_resolver()

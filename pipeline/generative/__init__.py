"""The generative model families (method, step 3) and the two kinds of
"model" that stand beside them: one file per family (`vae.py`, `gan.py`,
`ddpm.py`: network + method, with the DDPM samplers in `samplers.py`), the
interface they share (`base.py`), building a family from its registry entry
(`build.py`; the entries are in pipeline/registry/), the one training loop
(`loop.py`), training one run (`fit.py`), drawing samples (`sampling.py`),
the controls (`controls.py`) and an outside model's samples (`imported.py`).

Nothing is imported here, so using the controls does not load the families.
"""

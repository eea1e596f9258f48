"""The controls (pipeline/generative/controls.py): models whose answer is
known, so the test's false-positive rate, true-positive rate and power can be
measured; the degraded two at the generative models' sample quality, so what
misreads alone do to a verdict is measured too."""

from pipeline.registry import Control

ENTRIES = (
    Control("data-memorizer", "Memorizer", "given", "memorized", "true-positive rate", rank=100),
    Control("data-learner", "Learner", "balanced", "significant", "false-positive rate", rank=110),
    Control("data-mixer", "Mixer", "mixed", "memorized", "power at mixer_fraction", rank=120),
    Control(
        "degraded-memorizer",
        "Memorizer (degraded)",
        "given",
        "memorized",
        "true-positive rate at degraded_fd",
        rank=130,
        degraded=True,
    ),
    Control(
        "degraded-learner",
        "Learner (degraded)",
        "balanced",
        "significant",
        "false-positive rate at degraded_fd",
        rank=140,
        degraded=True,
    ),
)

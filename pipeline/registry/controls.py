"""The three controls (pipeline/generative/controls.py): models whose answer
is known, so the test's false-positive rate, true-positive rate and power
can be measured."""

from pipeline.registry import Control

ENTRIES = (
    Control("data-memorizer", "Memorizer", "given", "memorized", "true-positive rate", rank=100),
    Control("data-learner", "Learner", "balanced", "significant", "false-positive rate", rank=110),
    Control("data-mixer", "Mixer", "mixed", "memorized", "power at mixer_fraction", rank=120),
)

"""Self-checking exercises: a check per exercise that answers in words, never with a traceback.

The solved notebooks in ``notebooks/exercises/`` are the single source of the exercises: each
answer cell is tagged ``solution`` and holds the reference solution between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` lines, followed by the stub the student sees as ``# STUB:`` comment lines.
``flowlab exercises --out DIR`` (:mod:`flowlab.exercises.student`) writes the student notebooks:
solutions replaced by their stubs, outputs dropped.

Each check (``check_pred_data(pred_data_reversed)`` ...) runs the student's answer against the truth
derived by flowlab on seeded random inputs and returns a :class:`Result` that reads ``PASS``,
``not done yet``, ``not yet right`` (with the misconception behind a known wrong formula) or
``your code raised an error`` (naming the exception). :data:`EXERCISES` lists them all.

What a check holds an answer to (:func:`flowlab.exercises.core.check_cases`): several batch shapes, float64
and float32, random times away from 0, 1/2 and 1, asymmetric data where a mirror image would pass for the
answer; the caller's tensors unchanged after the call (no in-place writes to any argument); the dtype and
device the exercise states; no call of the flowlab function that solves the exercise. A known mistake is
named only when the answer equals that mistake's formula on every set of inputs. ``tools/mutation_exercises.py``
measures how sharp the checks are (mutants of every solution, judged by an independent random-input oracle).
Checks 1-7 live in :mod:`.checks`, 8-14 in :mod:`.checks_more`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .checks import (EXERCISE_PATH, check_fixed_schedule, check_flip, check_jumps, check_pred_data, check_shift,
                     check_sw2_after, check_which_is_data)
from .checks_more import (check_guided_velocity, check_hunyuan_time, check_mystery, check_port_sampler,
                          check_time_embedding, check_velocity_to_noise, check_velocity_to_score)
from .core import STATUSES, Result
from .mystery import MysteryScheduler

__all__ = ["Exercise", "EXERCISES", "Result", "STATUSES", "EXERCISE_PATH", "MysteryScheduler",
           "check_jumps", "check_which_is_data", "check_pred_data", "check_flip", "check_shift",
           "check_fixed_schedule", "check_sw2_after", "check_velocity_to_noise", "check_velocity_to_score",
           "check_guided_velocity", "check_mystery", "check_port_sampler", "check_hunyuan_time",
           "check_time_embedding"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its number, topic, the notebook it lives in, its check, and the names (in the
    notebook) of the answers the check takes, in order."""

    number: int
    topic: str
    notebook: str
    check: Callable[..., Result]
    answers: tuple[str, ...]


EXERCISES: tuple[Exercise, ...] = (
    Exercise(1, "derive pred_x0 / pred_x1 from the update rule (SymPy)", "EX_01_predictions.ipynb", check_jumps,
             ("pred_x0", "pred_x1")),
    Exercise(2, "substitute the reversed path: which jump is the data", "EX_01_predictions.ipynb",
             check_which_is_data, ("x_path", "v_path", "data_is")),
    Exercise(3, "the reversed data prediction in torch", "EX_01_predictions.ipynb", check_pred_data,
             ("pred_data_reversed",)),
    Exercise(4, "flip a model to the other convention", "EX_01_predictions.ipynb", check_flip, ("flip",)),
    Exercise(5, "the SD3 shift toward noise in the reversed convention", "EX_02_schedules.ipynb", check_shift,
             ("shift_reversed",)),
    Exercise(6, "fix Hunyuan3D-2's schedule: N calls, N effective steps", "EX_02_schedules.ipynb",
             check_fixed_schedule, ("fixed_schedule",)),
    Exercise(7, "measure what the fix buys at small N", "EX_02_schedules.ipynb", check_sw2_after, ("sw2_after",)),
    Exercise(8, "velocity -> noise (epsilon) on a custom affine path", "EX_03_paths_and_guidance.ipynb",
             check_velocity_to_noise, ("velocity_to_noise",)),
    Exercise(9, "velocity -> score on a custom affine path", "EX_03_paths_and_guidance.ipynb",
             check_velocity_to_score, ("velocity_to_score",)),
    Exercise(10, "guide with the data prediction (#124 use case)", "EX_03_paths_and_guidance.ipynb",
             check_guided_velocity, ("guided_velocity",)),
    Exercise(11, "read an unknown scheduler's convention with flowlab inspect", "EX_04_porting_and_shape.ipynb",
             check_mystery, ("answers", "mystery_pred_data")),
    Exercise(12, "port a sampler loop from diffusers' convention to Hunyuan3D-2's", "EX_04_porting_and_shape.ipynb",
             check_port_sampler, ("sample_hunyuan",)),
    Exercise(13, "the shape model: fp16 time rounding", "EX_04_porting_and_shape.ipynb", check_hunyuan_time,
             ("hunyuan_time",)),
    Exercise(14, "the shape model: the max_period 1000 time embedding", "EX_04_porting_and_shape.ipynb",
             check_time_embedding, ("hunyuan_embedding",)),
)

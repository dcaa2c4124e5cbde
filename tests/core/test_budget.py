"""How a memory budget is read and spent: whole pictures when they fit, a shorter history and tiles when not."""

from __future__ import annotations

import pytest

from core import budget
from core.errors import MemoryBudgetTooSmall
from core.networks import VGG19
from core.params import StyleParams
from core.units import parse_bytes

GiB = 2**30
DEFAULTS = StyleParams()


def plan(width: int, height: int, available: float, optimizer: str = "lbfgs") -> budget.StagePlan:
    size = (width, height)
    return budget.plan_stage(
        VGG19, size, [size], DEFAULTS.content_layers, DEFAULTS.style_layers, optimizer, int(available)
    )


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("8GiB", 8 * GiB),
        ("512MiB", 512 * 2**20),
        ("8GB", 8 * 10**9),
        ("1.5GiB", 3 * GiB // 2),
        ("4096", 4096),
        (10, 10),
    ],
)
def test_amounts_of_memory_are_read_with_their_unit(text: str | int, amount: int) -> None:
    assert parse_bytes(text) == amount


@pytest.mark.parametrize("text", ["eight", "8 parsecs", "-1GiB", "0", ""])
def test_anything_else_is_refused_saying_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match="memory"):
        parse_bytes(text)


def test_a_picture_that_fits_runs_whole_with_the_full_history() -> None:
    stage = plan(1024, 768, 8 * GiB)
    assert stage.tiles is None and stage.history == budget.FULL_HISTORY and stage.content_tiles is None


def test_a_picture_too_large_for_the_budget_is_tiled_within_it() -> None:
    stage = plan(4096, 3072, 7 * GiB)
    assert stage.tiles is not None and len(stage.tiles.tiles) > 1
    assert budget.MIN_HISTORY <= stage.history < budget.FULL_HISTORY


def test_the_tiles_and_the_history_stay_within_the_planned_share_of_the_budget() -> None:
    limit = 3 * GiB
    stage = plan(2048, 1536, limit)
    assert stage.tiles is not None
    per_pixel = budget.VALUES_PER_ACTIVATION_GRAD * budget.activations_per_pixel(VGG19, DEFAULTS.style_layers) * 4
    history = stage.history * 2 * 3 * 4 * 2048 * 1536
    assert stage.tiles.largest * per_pixel + history < budget.PLANNED_SHARE * limit


def test_a_tiled_stage_gives_the_history_what_the_tiles_leave() -> None:
    stage = plan(2048, 1536, 8 * GiB)
    assert stage.tiles is not None and budget.MIN_HISTORY < stage.history < budget.FULL_HISTORY


def test_the_history_goes_down_to_its_minimum_before_the_budget_is_refused() -> None:
    stage = plan(4096, 3072, 6 * GiB)
    assert stage.tiles is not None and stage.history == budget.MIN_HISTORY


def test_adam_keeps_no_history() -> None:
    assert plan(4096, 3072, 7 * GiB, optimizer="adam").history == 0


def test_a_budget_not_even_the_smallest_tile_fits_names_what_is_needed() -> None:
    with pytest.raises(MemoryBudgetTooSmall, match=r"4096×3072 px stage needs at least .* GiB"):
        plan(4096, 3072, 512 * 2**20)


def test_work_is_the_pictures_pixels_times_the_tiling_overhead() -> None:
    whole, tiled = plan(2048, 1536, 64 * GiB), plan(2048, 1536, 6 * GiB)
    assert whole.work == 2048 * 1536
    # approx's default (1e-6 relative): the same product of floats, multiplied in another order.
    assert tiled.tiles is not None and tiled.work == pytest.approx(2048 * 1536 * tiled.tiles.work)

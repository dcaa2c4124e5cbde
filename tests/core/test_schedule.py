"""Planning a run without torch: its sizes, and whether the pictures reach the deepest layer at them."""

from __future__ import annotations

import pytest

from core.errors import ImageTooSmall
from core.params import StyleParams
from core.schedule import Stage, check_fits, plan_stages


def test_coarse_to_fine_halves_the_size_down_to_the_smallest_useful_side() -> None:
    assert plan_stages(StyleParams(size=512, iterations=300, multiscale=True)) == [Stage(256, 180), Stage(512, 120)]
    stages = plan_stages(StyleParams(size=1024, iterations=301, multiscale=True))
    assert [s.size for s in stages] == [256, 512, 1024] and sum(s.iterations for s in stages) == 301


def test_the_default_and_small_sizes_run_at_one_scale() -> None:
    assert plan_stages(StyleParams(size=1024, iterations=50)) == [Stage(1024, 50)]
    assert plan_stages(StyleParams(size=256, iterations=50, multiscale=True)) == [Stage(256, 50)]


def test_print_sizes_go_coarse_to_fine_unless_told_not_to() -> None:
    stages = plan_stages(StyleParams(size=4096, iterations=300))
    assert [s.size for s in stages] == [256, 512, 1024, 2048, 4096]
    assert stages[-1].iterations == 120 and sum(s.iterations for s in stages) == 300
    assert plan_stages(StyleParams(size=4096, iterations=300, multiscale=False)) == [Stage(4096, 300)]


def test_a_picture_that_keeps_16_px_at_the_run_size_fits() -> None:
    check_fits(StyleParams(size=64), ("content", (256, 64)), [("style 1", (64, 64))])


def test_a_panorama_too_thin_once_scaled_is_refused_with_its_scaled_size() -> None:
    with pytest.raises(ImageTooSmall, match=r"content is 979×24, so at 512 px on its longest side it would be 512×13"):
        check_fits(StyleParams(size=512), ("content", (979, 24)), [("style 1", (64, 64))])


def test_a_painting_shrunk_too_far_by_style_scale_is_refused() -> None:
    with pytest.raises(ImageTooSmall, match=r"style 1 .* at 16 px"):
        check_fits(StyleParams(size=64, style_scale=0.25), ("content", (64, 64)), [("style 1", (64, 48))])


def test_the_coarsest_stage_decides_whether_a_picture_fits() -> None:
    wide = ("content", (1000, 40))  # 16 px tall at 400 px wide, 8 px at the coarse stage's 200
    check_fits(StyleParams(size=400), wide, [])
    with pytest.raises(ImageTooSmall, match="at 200 px"):
        check_fits(StyleParams(size=400, multiscale=True), wide, [])


def test_a_deeper_layer_needs_a_larger_side() -> None:
    check_fits(StyleParams(size=32), ("content", (32, 16)), [])
    with pytest.raises(ImageTooSmall, match="at least 32 px"):
        check_fits(StyleParams(size=32, style_layers="pool5"), ("content", (32, 16)), [])

"""The parameter model: defaults, ranges, and the string forms used by CLI flags and form fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import InvalidRequest
from core.params import LAYER_NAMES, StyleParams


def error_fields(error: ValidationError) -> set[str]:
    return {str(e["loc"][0]) for e in error.errors()}


def test_defaults_use_the_papers_layers() -> None:
    params = StyleParams()
    assert params.content_layers == {"relu4_2": 1.0}
    assert list(params.style_layers) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert params.size == 512 and params.optimizer == "lbfgs" and params.multiscale is None


def test_sizes_reach_print_size() -> None:
    assert StyleParams(size=4096).size == 4096
    with pytest.raises(ValidationError, match="less than or equal to 4096"):
        StyleParams(size=4097)


@pytest.mark.parametrize(("size", "expected"), [(512, False), (1024, False), (1025, True), (4096, True)])
def test_an_unset_multiscale_goes_coarse_to_fine_above_1024_px(size: int, expected: bool) -> None:
    assert StyleParams(size=size).coarse_to_fine is expected


@pytest.mark.parametrize("size", [512, 4096])
def test_an_explicit_multiscale_wins_at_any_size(size: int) -> None:
    assert StyleParams(size=size, multiscale=True).coarse_to_fine
    assert not StyleParams(size=size, multiscale=False).coarse_to_fine


def test_an_omitted_multiscale_form_field_means_automatic() -> None:
    assert StyleParams.from_mapping({"multiscale": ""}).multiscale is None
    assert StyleParams.from_mapping({"multiscale": "false"}).multiscale is False


def test_layer_names_cover_vgg19() -> None:
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and len(LAYER_NAMES) == 37


def test_layer_weights_parse_from_a_string() -> None:
    params = StyleParams.model_validate({"style_layers": "relu1_1, relu3_1:0.5"})
    assert params.style_layers == {"relu1_1": 1.0, "relu3_1": 0.5}


def test_unknown_layer_is_named_in_the_error() -> None:
    with pytest.raises(ValidationError, match="relu9_9"):
        StyleParams.model_validate({"content_layers": "relu9_9"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", 8),
        ("size", 100_000),
        ("iterations", 0),
        ("style_weight", -1),
        ("style_scale", 0),
        ("seed", -1),
        ("pooling", "median"),
        ("optimizer", "sgd"),
        ("output_format", "gif"),
        ("size", "big"),
    ],
)
def test_out_of_range_or_ill_typed_values_name_their_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        StyleParams.model_validate({field: value})
    assert error_fields(raised.value) == {field}


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        StyleParams.model_validate({"stlye_weight": 5})
    assert error_fields(raised.value) == {"stlye_weight"}


def test_blend_parses_and_normalises() -> None:
    params = StyleParams.model_validate({"style_blend": "3, 1"})
    assert params.blend_weights(2) == [0.75, 0.25]


def test_blend_defaults_to_equal_weights() -> None:
    assert StyleParams().blend_weights(4) == [0.25] * 4


def test_blend_must_match_the_number_of_styles() -> None:
    with pytest.raises(InvalidRequest, match="2 weights but 3 style"):
        StyleParams(style_blend=[1, 1]).blend_weights(3)


def test_more_than_four_styles_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="between 1 and 4"):
        StyleParams().blend_weights(5)


def test_from_mapping_ignores_unset_values() -> None:
    assert StyleParams.from_mapping({"size": "64", "seed": None, "init": ""}) == StyleParams(size=64)

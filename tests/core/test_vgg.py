"""The feature network: named layers, early stopping, and every way of getting weights."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from core.errors import DeviceUnavailable, WeightsMismatch, WeightsNotFound
from core.networks import VGG16, VGG19
from core.vgg import (
    CAFFE,
    TORCHVISION,
    FeatureNet,
    Preprocessing,
    VggWeights,
    load_vgg,
    read_weights,
    state_dict_of,
    weights_name,
)
from core.weights_download import TRAINED_TIERS, VGG16_IMAGENET, VGG16_IMAGENET_KERAS, VGG19_IMAGENET
from tests.core.onnx_models import one_conv_onnx, vgg16_onnx
from tests.support.weights_files import (
    TORCHVISION_CONV_INDICES,
    vgg16_state_dict,
    write_vgg16_weights,
    write_vgg19_weights,
)


def torchvision_layout(net: FeatureNet, prefix: str = "features.") -> dict[str, torch.Tensor]:
    """The net's convolutions under torchvision's key names (conv i sits at index 0, 2, 5, 7, …)."""
    ours = net.state_dict()
    return {
        f"{prefix}{index}.{kind}": ours[f"convs.{i}.{kind}"].clone()
        for i, index in enumerate(TORCHVISION_CONV_INDICES)
        for kind in ("weight", "bias")
    }


def test_random_weights_are_reproducible(net: FeatureNet) -> None:
    again = load_vgg("random", device="cpu")
    assert net.weights_name == "random(seed=0)"
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True))


def test_weights_are_frozen(net: FeatureNet) -> None:
    assert not any(p.requires_grad for p in net.parameters())


def test_forward_returns_the_requested_layers(net: FeatureNet) -> None:
    features = net(torch.rand(1, 3, 32, 32), ["relu1_1", "conv3_1", "relu4_2"])
    assert set(features) == {"relu1_1", "conv3_1", "relu4_2"}
    assert features["relu1_1"].shape == (1, 64, 32, 32)
    assert features["relu4_2"].shape == (1, 512, 4, 4)


def test_requested_conv_outputs_are_not_rectified(net: FeatureNet) -> None:
    assert net(torch.rand(1, 3, 32, 32), ["conv3_1"])["conv3_1"].min() < 0


def test_forward_stops_at_the_deepest_requested_layer(net: FeatureNet) -> None:
    ran: list[int] = []
    hooks = [conv.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, conv in enumerate(net.convs)]
    net(torch.rand(1, 3, 32, 32), ["relu2_1"])
    for hook in hooks:
        hook.remove()
    assert ran == [0, 1, 2]


def test_average_pooling_changes_deeper_features(net: FeatureNet) -> None:
    image = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(net(image, ["relu2_1"], "max")["relu2_1"], net(image, ["relu2_1"], "avg")["relu2_1"])


def test_loads_a_torchvision_state_dict_file(net: FeatureNet, tmp_path: Path) -> None:
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision_layout(net), path)
    loaded = load_vgg(str(path), device="cpu")
    assert loaded.weights_name == "file:vgg19.pth"
    assert torch.equal(loaded.state_dict()["convs.15.weight"], net.state_dict()["convs.15.weight"])


def test_loads_a_features_only_state_dict(net: FeatureNet, tmp_path: Path) -> None:
    path = tmp_path / "features.pth"
    torch.save(torchvision_layout(net, prefix=""), path)
    assert torch.equal(load_vgg(str(path), device="cpu").state_dict()["convs.0.bias"], net.state_dict()["convs.0.bias"])


def test_caffe_weights_see_bgr_pixels_on_a_255_scale(net: FeatureNet, tmp_path: Path) -> None:
    path = tmp_path / "vgg19-caffe.pth"
    torch.save(torchvision_layout(net), path)
    caffe = load_vgg(f"caffe:{path}", device="cpu")
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    assert caffe.weights_name == "caffe:vgg19-caffe.pth"
    # approx's default (1e-6 relative): float32 of the Caffe means, which are written to three decimals.
    assert caffe.normalize(red).flatten().tolist() == pytest.approx([-103.939, -116.779, 255 - 123.68])


def test_imagenet_weights_load_from_the_torch_hub_cache(
    net: FeatureNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)  # where torchvision's own download puts it
    torch.save(torchvision_layout(net), tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth")
    assert load_vgg("imagenet", device="cpu").weights_name == "vgg19-imagenet"
    assert load_vgg("auto", device="cpu").weights_name == "vgg19-imagenet"


def test_auto_falls_back_to_random_weights_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert load_vgg("auto", device="cpu").weights_name == "random(seed=0)"
    assert "using seeded random weights" in caplog.text


@pytest.mark.parametrize("weights", ["auto", "random", "{path}", "caffe:{path}"])
def test_the_weights_name_is_known_without_loading_the_weights(
    net: FeatureNet, weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no ImageNet download here: auto means random
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision_layout(net), path)
    weights = weights.format(path=path)
    assert weights_name(weights) == load_vgg(weights, device="cpu").weights_name


def test_missing_imagenet_weights_say_where_they_were_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound, match=r"checkpoints/vgg19-dcbb9e9d-features\.pth.*restyle fetch-weights"):
        load_vgg("imagenet", device="cpu")


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match=r"nothing\.pth"):
        load_vgg(str(tmp_path / "nothing.pth"))


def test_weights_of_the_wrong_shape_are_reported(net: FeatureNet, tmp_path: Path) -> None:
    state = torchvision_layout(net)
    state["features.28.weight"] = torch.zeros(256, 512, 3, 3)
    torch.save(state, tmp_path / "vgg16ish.pth")
    with pytest.raises(WeightsMismatch, match=r"'features.28.weight' has shape \(256, 512, 3, 3\)"):
        load_vgg(str(tmp_path / "vgg16ish.pth"))


def test_a_directory_given_as_weights_is_called_a_directory(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match="is a directory, not a weights file"):
        load_vgg(str(tmp_path))


def test_a_state_dict_whose_entries_are_not_tensors_is_a_mismatch(tmp_path: Path) -> None:
    state: dict[str, object] = {**vgg16_state_dict(), "features.0.bias": 5}
    torch.save(state, tmp_path / "numbers.pth")
    with pytest.raises(WeightsMismatch, match=r"'features\.0\.bias' holds a int, VGG16 needs a tensor"):
        load_vgg(str(tmp_path / "numbers.pth"))


def test_a_state_dict_lacking_a_bias_names_the_key_it_lacks(tmp_path: Path) -> None:
    state = vgg16_state_dict()
    del state["features.28.bias"]
    torch.save(state, tmp_path / "no-bias.pth")
    with pytest.raises(WeightsMismatch, match=r"lacks 'features\.28\.bias': it is not a VGG16 state dict"):
        load_vgg(str(tmp_path / "no-bias.pth"))


def test_a_state_dict_with_keys_that_are_not_names_is_a_mismatch(tmp_path: Path) -> None:
    torch.save({1: torch.zeros(64, 3, 3, 3)}, tmp_path / "numbered.pth")
    with pytest.raises(WeightsMismatch, match=r"holds 0 convolution kernels under 'N\.weight'"):
        load_vgg(str(tmp_path / "numbered.pth"))


def write_text(path: Path) -> None:
    path.write_text("not a checkpoint")


def write_nothing(path: Path) -> None:
    path.write_bytes(b"")


def write_a_whole_model(path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2), path)


def write_half_a_checkpoint(path: Path) -> None:
    torch.save({"0.weight": torch.zeros(4)}, path)
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (write_text, "it was not written by torch.save"),
        (write_nothing, "the file is empty"),
        (
            write_a_whole_model,
            "it holds Python objects besides tensors, such as a whole model; save its state_dict() instead",
        ),
        (write_half_a_checkpoint, "it is not a complete torch.save archive"),
    ],
    ids=["text", "empty", "pickled model", "truncated"],
)
def test_a_file_that_is_not_a_state_dict_is_reported_in_a_short_sentence(
    write: Callable[[Path], None], reason: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.pth"
    write(path)
    with pytest.raises(WeightsMismatch) as caught:
        load_vgg(str(path))
    # Never torch's own advice to retry with weights_only=False: that would let the file run code.
    assert caught.value.message == f"{path} is not a PyTorch state dict ({reason})"


def test_a_name_that_is_no_torch_device_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match="'bogus' is not a torch device"):
        load_vgg("random", device="bogus")


def test_cuda_on_a_machine_without_it_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailable, match="device 'cuda': CUDA is not available on this machine"):
        load_vgg("random", device="cuda")


def test_a_cuda_device_beyond_the_machines_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceUnavailable, match=r"device 'cuda:3': this machine has 1 CUDA device\(s\)"):
        load_vgg("random", device="cuda:3")


# VGG16, ONNX exports, and the trained tiers --------------------------------------------------------------


def convs_equal(net: FeatureNet, state: dict[str, torch.Tensor]) -> bool:
    """Whether each of the net's convolutions holds the tensors ``state`` has at its torchvision index."""
    ours = net.state_dict()
    return all(
        torch.equal(ours[f"convs.{number}.{kind}"], torch.as_tensor(state[f"features.{index}.{kind}"]))
        for number, index in enumerate(net.network.conv_indices)
        for kind in ("weight", "bias")
    )


def test_a_torchvision_vgg16_state_dict_loads_as_vgg16_with_torchvision_preprocessing(tmp_path: Path) -> None:
    path = write_vgg16_weights(tmp_path / "vgg16.pth")
    loaded = load_vgg(str(path), device="cpu")
    assert (loaded.weights_name, loaded.network, loaded.preprocessing) == ("file:vgg16.pth", VGG16, TORCHVISION)
    assert convs_equal(loaded, vgg16_state_dict())
    assert loaded(torch.rand(1, 3, 32, 32), ["relu5_3"])["relu5_3"].shape == (1, 512, 2, 2)


@pytest.mark.parametrize("file_name", VGG16_IMAGENET.files, ids=["features alone", "whole download"])
def test_imagenet_vgg16_loads_from_the_torch_hub_cache_under_either_name(
    file_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    whole = file_name == VGG16_IMAGENET.files[-1]  # torchvision's own download carries the classifier too
    write_vgg16_weights(tmp_path / "hub" / "checkpoints" / file_name, classifier=whole)
    loaded = load_vgg("vgg16-imagenet", device="cpu")
    assert (loaded.weights_name, loaded.network, loaded.preprocessing) == ("vgg16-imagenet", VGG16, TORCHVISION)
    assert convs_equal(loaded, vgg16_state_dict())


def test_a_state_dict_with_fourteen_convolutions_is_refused_naming_vgg16s_and_vgg19s_counts(tmp_path: Path) -> None:
    state = vgg16_state_dict()
    state["features.31.weight"], state["features.31.bias"] = torch.zeros(512, 512, 3, 3), torch.zeros(512)
    torch.save(state, tmp_path / "vgg16-and-one.pth")
    with pytest.raises(WeightsMismatch) as refused:
        load_vgg(str(tmp_path / "vgg16-and-one.pth"), device="cpu")
    assert refused.value.message == (
        "the file holds 14 convolution kernels under 'features.N.weight'; VGG16 has 13 and VGG19 16, "
        "so it is neither's torchvision state dict"
    )


def test_vgg16_weights_saved_with_state_dict_of_read_back_with_their_caffe_preprocessing(tmp_path: Path) -> None:
    caffe = read_weights(f"caffe:{write_vgg16_weights(tmp_path / 'vgg16-caffe.pth')}")
    assert (caffe.network, caffe.preprocessing) == (VGG16, CAFFE)
    torch.save(state_dict_of(caffe), tmp_path / "kept.pth")

    again = read_weights(str(tmp_path / "kept.pth"))  # a plain path: torchvision's unless the file says
    assert (again.network, again.preprocessing) == (VGG16, CAFFE)
    assert again.state.keys() == caffe.state.keys()
    assert all(torch.equal(again.state[key], caffe.state[key]) for key in caffe.state)
    assert load_vgg(str(tmp_path / "kept.pth"), device="cpu").preprocessing == CAFFE


@pytest.mark.parametrize(
    ("channels_last", "preprocessing"),
    [(False, TORCHVISION), (True, CAFFE)],
    ids=["channels-first export: torchvision's", "channels-last (Keras) export: Caffe's"],
)
def test_an_onnx_vgg16_export_loads_with_the_preprocessing_its_layout_implies_and_its_tensors(
    channels_last: bool, preprocessing: Preprocessing, tmp_path: Path
) -> None:
    model, expected = vgg16_onnx(channels_last=channels_last)
    (tmp_path / "vgg16.onnx").write_bytes(model)
    spec = f"onnx:{tmp_path / 'vgg16.onnx'}"
    loaded = load_vgg(spec, device="cpu")
    assert (loaded.weights_name, loaded.network, loaded.preprocessing) == ("onnx:vgg16.onnx", VGG16, preprocessing)
    assert weights_name(spec) == loaded.weights_name
    assert convs_equal(loaded, {key: torch.from_numpy(value) for key, value in expected.items()})


def test_an_onnx_graph_that_is_no_vgg_is_refused_counting_its_convolutions(tmp_path: Path) -> None:
    (tmp_path / "one-conv.onnx").write_bytes(one_conv_onnx())
    with pytest.raises(WeightsMismatch) as refused:
        load_vgg(f"onnx:{tmp_path / 'one-conv.onnx'}", device="cpu")
    assert refused.value.message == "one-conv.onnx has 1 convolutions; VGG16 13 and VGG19 16, so it is neither network"


def write_a_state_dict(path: Path) -> None:
    torch.save(vgg16_state_dict(), path)


@pytest.mark.parametrize("write", [write_text, write_a_state_dict], ids=["text", "torch state dict"])
def test_a_file_that_is_not_onnx_given_as_onnx_is_refused_as_not_an_onnx_model(
    write: Callable[[Path], None], tmp_path: Path
) -> None:
    path = tmp_path / "weights.onnx"
    write(path)
    with pytest.raises(WeightsMismatch) as refused:
        load_vgg(f"onnx:{path}", device="cpu")
    assert refused.value.message == f"{path} is not an ONNX model (DecodeError)"


def test_a_missing_onnx_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match=r"ONNX weights file .*nothing\.onnx not found"):
        load_vgg(f"onnx:{tmp_path / 'nothing.onnx'}", device="cpu")


def test_auto_takes_the_best_trained_tier_cached_and_random_weights_after_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    keras = VggWeights(VGG16, CAFFE, vgg16_state_dict(seed=2))  # as core.keras_vgg16 keeps it
    files = {
        VGG19_IMAGENET.name: write_vgg19_weights(checkpoints / VGG19_IMAGENET.files[0]),
        VGG16_IMAGENET.name: write_vgg16_weights(checkpoints / VGG16_IMAGENET.files[0]),
        VGG16_IMAGENET_KERAS.name: checkpoints / VGG16_IMAGENET_KERAS.files[0],
    }
    torch.save(state_dict_of(keras), files[VGG16_IMAGENET_KERAS.name])
    assert [tier.name for tier in TRAINED_TIERS] == list(files)  # best first

    chosen = []
    for tier in TRAINED_TIERS:
        net = load_vgg("auto", device="cpu")
        chosen.append((net.weights_name, net.network, net.preprocessing))
        files[tier.name].unlink()  # the next tier down is all that is left
    net = load_vgg("auto", device="cpu")
    chosen.append((net.weights_name, net.network, net.preprocessing))

    assert chosen == [
        ("vgg19-imagenet", VGG19, TORCHVISION),
        ("vgg16-imagenet", VGG16, TORCHVISION),
        ("vgg16-imagenet-keras", VGG16, CAFFE),
        ("random(seed=0)", VGG19, TORCHVISION),
    ]

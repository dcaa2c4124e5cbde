"""What the VGG19 weights' names mean, and the one line every shell shows while it runs on filters made up
offline instead of a trained VGG19.

Free of torch on purpose: the API imports it for ``/readyz`` and the job schema, and the API never loads torch
(``core.vgg`` would), so the rule for which names are trained is stated here, beside the words it decides.
"""

from __future__ import annotations

FETCH_COMMAND = ".venv/bin/restyle fetch-weights"

# The meaning of a weights name, for every field that carries one (a job's `weights`, /readyz's `weights`).
WEIGHTS_DESCRIPTION = (
    "`imagenet` is torchvision's ImageNet VGG19, a trained network; `random(seed=N)` is seeded random filters, "
    "made offline (what `auto` falls back to without the download, and what an image built with "
    "VGG_WEIGHTS=random serves), which give visibly weaker pictures; `file:NAME` and `caffe:NAME` are a "
    "weights file the operator supplied (a torchvision state dict, or a Caffe-converted VGG19)."
)

_TRAINED_PREFIXES = ("file:", "caffe:")


def is_trained(weights_name: str) -> bool:
    """Whether a ``FeatureNet.weights_name`` is a trained network (ImageNet or a supplied file); every other
    name (``random(seed=0)``, and any offline kind to come) is filters made up without training."""
    return weights_name == "imagenet" or weights_name.startswith(_TRAINED_PREFIXES)


def untrained_notice(weights_name: str) -> str | None:
    """What running on ``weights_name`` means and the command that fixes it; None for trained weights."""
    if is_trained(weights_name):
        return None
    return (
        f"Running on {weights_name} VGG19 weights, not ImageNet's: pictures take the painting's colours and "
        f"fine grain but little of its strokes. `{FETCH_COMMAND}` downloads the real ones (scripts/serve.sh "
        "does on start; a Docker image gets them built with VGG_WEIGHTS=imagenet), then restart the service."
    )

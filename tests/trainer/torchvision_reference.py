#!/usr/bin/python3
"""torchvision's own model as the reference for retrain-trainer's.

    /usr/bin/python3 tests/trainer/torchvision_reference.py MODEL IMAGE_SIZE OUT_DIR [imagenet]

Builds torchvision's MODEL (inception_v3 or resnet50, 1000 classes) with
seeded random weights, gives every batch norm the statistics of a real
batch and a random scale and shift (so that none of them is the identity),
and writes OUT_DIR/weights.safetensors (scripts/weights_to_safetensors.py's
writer) and OUT_DIR/io.safetensors: "input", two images in [-1, 1], and
"logits", torchvision's outputs for them in evaluation mode.

With "imagenet" the model is torchvision's as its ImageNet weights are
used: fed the images as pixels in [0, 1] normalised by ImageNet's mean and
std, and the weights are written with that normalisation folded into the
first layers (scripts/weights_to_safetensors.py --input imagenet), so that
retrain's model fed "input" itself should give the same logits.

inception_v3's average pools inside its blocks leave the padding out of the
average here, as TF-slim's model (the reference's) and retrain's do;
torchvision counts it, and its ImageNet weights were ported from TF.
"""

import importlib.util
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
import torchvision.models.inception as tv_inception

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "weights_to_safetensors", os.path.join(HERE, "..", "..", "scripts", "weights_to_safetensors.py"))
writer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(writer)


class _PaddingLeftOut:
    """torch.nn.functional with avg_pool2d's padding not counted."""

    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def avg_pool2d(x, kernel_size, stride=None, padding=0, **kwargs):
        kwargs["count_include_pad"] = False
        return F.avg_pool2d(x, kernel_size, stride, padding, **kwargs)


def build(model_name):
    if model_name == "inception_v3":
        tv_inception.F = _PaddingLeftOut()
        return torchvision.models.inception_v3(
            num_classes=1000, aux_logits=True, transform_input=False, init_weights=True)
    return torchvision.models.resnet50(num_classes=1000)


def main():
    model_name, image_size, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    imagenet = sys.argv[4:] == ["imagenet"]
    mean = torch.tensor(writer.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(writer.IMAGENET_STD).view(1, 3, 1, 1)

    def fed(images):  # what torchvision's model is given for images in [-1, 1]
        return ((images + 1) / 2 - mean) / std if imagenet else images

    torch.manual_seed(7)
    model = build(model_name)
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in batch_norms:
            bn.momentum = 1.0  # the running statistics become one batch's
        model.train()
        model(fed(torch.rand(4, 3, image_size, image_size) * 2 - 1))
        for bn in batch_norms:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
        model.eval()
        images = torch.rand(2, 3, image_size, image_size) * 2 - 1
        logits = model(fed(images))
    state = model.state_dict()
    if imagenet:
        state = writer.fold_input_normalization(state, model_name)
    os.makedirs(out_dir, exist_ok=True)
    writer.save_safetensors(state, os.path.join(out_dir, "weights.safetensors"),
                            {"format": "pt", "retrain.model": model_name})
    writer.save_safetensors({"input": images, "logits": logits},
                            os.path.join(out_dir, "io.safetensors"))


if __name__ == "__main__":
    main()

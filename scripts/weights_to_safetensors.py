#!/usr/bin/python3
"""Writes PyTorch weights as a safetensors file that retrain-trainer starts from.

    # torchvision's ImageNet weights of a model retrain-trainer has
    # (inception_v3, resnet50); torchvision downloads them:
    python3 scripts/weights_to_safetensors.py inception_v3 inception_v3.safetensors
    # a saved state dict (torch.save(model.state_dict(), ...)), or a
    # checkpoint dict holding one under "state_dict" or "model":
    python3 scripts/weights_to_safetensors.py --pth model.pth --model resnet50 out.safetensors

then

    retrain-trainer train --model inception_v3 --fine_tune \\
        --pretrained_model_checkpoint_path inception_v3.safetensors ...

Needs PyTorch (and torchvision for the first form), any version, and
nothing else: the file is written here, not by the safetensors package.
The tensors keep their state-dict names, which are retrain-trainer's for
these models. Floating-point tensors are written as F32, integers as I64.

retrain feeds models pixels in [-1, 1], which inception_v3's ImageNet
weights (ported from TF-slim) were trained on; resnet50's were trained on
ImageNet's mean/std normalisation, which is folded into its first layers
(--input says which a state dict was trained on).
"""

import argparse
import json
import os
import struct
import sys

MODELS = ("inception_v3", "resnet50")


def save_safetensors(tensors, path, metadata=None):
    """Writes {name: tensor} to `path` (a temporary name, then renamed)."""
    import torch

    header = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        t = tensor.detach().cpu().contiguous()
        if t.is_floating_point():
            t, dtype = t.to(torch.float32), "F32"
        elif t.dtype == torch.bool:
            t, dtype = t.to(torch.uint8), "BOOL"
        else:
            t, dtype = t.to(torch.int64), "I64"
        blob = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    temporary = os.path.join(os.path.dirname(path) or ".", "." + os.path.basename(path) + ".tmp")
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(temporary, path)


def load_state_dict(pth):
    import torch

    state = torch.load(pth, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        sys.exit(f"{pth}: holds a {type(state).__name__}, not a state dict; "
                 "save model.state_dict() instead of the model")
    # Weights saved from nn.DataParallel / DistributedDataParallel.
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Each model's first convolution (no bias) and the batch norm after it.
FIRST_LAYERS = {
    "inception_v3": ("Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.running_mean"),
    "resnet50": ("conv1.weight", "bn1.running_mean"),
}
# The input the ImageNet weights of torchvision were trained on.
TORCHVISION_INPUT = {"inception_v3": "as-is", "resnet50": "imagenet"}


def fold_input_normalization(state, model, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Makes weights trained on (pixels in [0, 1] - mean) / std take
    retrain's pixels in [-1, 1] instead. The normalised input is
    x / (2 std) + (0.5 - mean) / std: the scale goes into the first
    convolution's weights and the shift, a constant per output channel of a
    convolution without bias, into the batch norm after it. Exact for
    inception_v3 (its first convolution has no padding); for resnet50 exact
    but at the borders, where the zero padding stood for the mean."""
    import torch

    first_conv, first_bn = FIRST_LAYERS[model]
    weight = state[first_conv].clone()
    scale = torch.tensor([1.0 / (2.0 * s) for s in std]).view(1, 3, 1, 1)
    shift = torch.tensor([(0.5 - m) / s for m, s in zip(mean, std)]).view(1, 3, 1, 1)
    constant = (weight * shift).sum(dim=(1, 2, 3))
    state = dict(state)
    state[first_conv] = weight * scale
    state[first_bn] = state[first_bn] - constant
    return state


def torchvision_state_dict(model):
    import torchvision

    constructor = getattr(torchvision.models, model)
    try:
        try:
            net = constructor(weights="DEFAULT")
        except TypeError:  # torchvision before 0.13
            net = constructor(pretrained=True)
    except OSError as e:  # urllib's URLError is one
        sys.exit(f"could not download torchvision's {model} weights ({e}): on a machine that "
                 f"can, run torchvision.models.{model}(weights=\"DEFAULT\") once and copy "
                 "~/.cache/torch/hub/checkpoints/ here, or pass the file as --pth FILE "
                 f"--model {model}")
    return net.state_dict()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", choices=MODELS,
                        help="torchvision's ImageNet weights of this model")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--pth", help="a file written by torch.save instead")
    parser.add_argument("--model", dest="model_name", choices=MODELS,
                        help="with --pth: the model the weights are for (recorded in the file)")
    parser.add_argument("--input", choices=("imagenet", "as-is"),
                        help="what the weights were trained on: 'imagenet' (pixels in [0, 1] "
                             "normalised by ImageNet's mean and std: folded into the first "
                             "layers, so that they take retrain's [-1, 1]) or 'as-is' ([-1, 1] "
                             "already). Default: as torchvision's ImageNet weights of the model "
                             "(resnet50 imagenet, inception_v3 as-is)")
    args = parser.parse_args()
    if not args.output.endswith(".safetensors"):
        parser.error("the output file's name must end in .safetensors")
    if (args.model is None) == (args.pth is None):
        parser.error("give either a model name or --pth FILE")
    if args.pth:
        state, model = load_state_dict(args.pth), args.model_name
    else:
        state, model = torchvision_state_dict(args.model), args.model
    metadata = {"format": "pt"}
    if model:
        metadata["retrain.model"] = model
    trained_on = args.input or TORCHVISION_INPUT.get(model, "as-is")
    if trained_on == "imagenet":
        if model not in FIRST_LAYERS:
            parser.error("--input imagenet needs --model, to know the first layers")
        state = fold_input_normalization(state, model)
        metadata["retrain.input"] = "ImageNet mean/std folded into the first layers"
    save_safetensors(state, args.output, metadata)
    print(f"{args.output}: {len(state)} tensors" + (f" of {model}" if model else ""))


if __name__ == "__main__":
    main()

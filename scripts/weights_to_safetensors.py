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
    save_safetensors(state, args.output, metadata)
    print(f"{args.output}: {len(state)} tensors" + (f" of {model}" if model else ""))


if __name__ == "__main__":
    main()

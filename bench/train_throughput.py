#!/usr/bin/python3
"""Training throughput of the same models in PyTorch, for retrain-bench-train.

Run with Debian's Python and PyTorch (the same LibTorch 1.13.1 as the C++):
    apt-get install -y python3-torch python3-torchvision
    /usr/bin/python3 bench/train_throughput.py --model small --batch 64 [--device cuda]

Mirrors bench/train_throughput.cc step for step: forward, label-smoothed
cross-entropy (+ 0.4 x auxiliary for inception_v3) + L2 4e-5 * sum(w^2)/2 on
conv/linear weights, zero_grad, backward, staircase learning rate,
TensorFlow's RMSProp (ms starts at 1, epsilon inside the square root),
exponential moving average of parameters and float buffers. One synthetic
batch, made once. Prints one JSON line with the same fields, "impl":"python".

Models: `small` is defined here layer for layer as in
trainer/nn/small_cnn.cc; `resnet50` is torchvision's (the C++ model
has the same parameter names and shapes); `inception_v3` is torchvision's
with the reference's batch norm and dropout settings (its in-block average
pools count padding, the C++ ones do not: same cost).
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

INITIAL_LEARNING_RATE = 0.1
DECAY_STEPS = 1000
DECAY_FACTOR = 0.16
LABEL_SMOOTHING = 0.1
AUX_WEIGHT = 0.4
WEIGHT_DECAY = 4e-5


class Small(nn.Module):
    """trainer/nn/small_cnn.cc, layer for layer."""

    def __init__(self, num_classes):
        super().__init__()

        def conv(cin, cout, stride):
            return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)

        def norm(c):
            return nn.BatchNorm2d(c, eps=0.001, momentum=0.1)

        self.conv1, self.bn1 = conv(3, 32, 1), norm(32)
        self.conv2, self.bn2 = conv(32, 32, 2), norm(32)
        self.conv3, self.bn3 = conv(32, 64, 1), norm(64)
        self.conv4, self.bn4 = conv(64, 64, 2), norm(64)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(64 * 4, num_classes)
        for c in (self.conv1, self.conv2, self.conv3, self.conv4):
            nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
        nn.init.trunc_normal_(self.fc.weight, std=0.01, a=-0.02, b=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).relu_()
        x = self.bn2(self.conv2(x)).relu_()
        x = self.bn3(self.conv3(x)).relu_()
        x = self.bn4(self.conv4(x)).relu_()
        x = F.adaptive_avg_pool2d(x, (2, 2)).flatten(1)
        return self.fc(self.dropout(x)), None


class Torchvision(nn.Module):
    """A torchvision model returning (logits, aux_logits or None)."""

    def __init__(self, name, num_classes):
        super().__init__()
        import torchvision

        if name == "resnet50":
            self.net = torchvision.models.resnet50(num_classes=num_classes)
        else:
            self.net = torchvision.models.inception_v3(
                num_classes=num_classes, aux_logits=True, init_weights=False)
            for m in self.net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eps, m.momentum = 0.001, 0.0003
            self.net.dropout.p = 0.2

    def forward(self, x):
        out = self.net(x)
        if isinstance(out, tuple):  # InceptionOutputs in training mode
            return out[0], out[1]
        return out, None


DEFAULT_SIZE = {"small": 32, "resnet50": 224, "inception_v3": 299}


def smoothed_cross_entropy(logits, labels, ls):
    log_probs = torch.log_softmax(logits.float(), dim=1)
    label_term = log_probs.gather(1, labels.unsqueeze(1)).squeeze(1)
    uniform_term = log_probs.mean(dim=1)
    return -((1.0 - ls) * label_term + ls * uniform_term).mean()


class RmsPropTf:
    """TensorFlow's RMSProp, the same multi-tensor ops as rmsprop_tf.cc."""

    def __init__(self, params, lr, decay=0.9, momentum=0.9, epsilon=1.0):
        self.params = list(params)
        self.lr, self.decay, self.momentum, self.epsilon = lr, decay, momentum, epsilon
        self.ms = [torch.ones_like(p) for p in self.params]
        self.mom = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [self.params[i].grad for i in live]
        ms = [self.ms[i] for i in live]
        mom = [self.mom[i] for i in live]
        torch._foreach_mul_(ms, self.decay)
        torch._foreach_addcmul_(ms, grads, grads, value=1.0 - self.decay)
        denominators = torch._foreach_add(ms, self.epsilon)
        torch._foreach_sqrt_(denominators)
        torch._foreach_mul_(mom, self.momentum)
        torch._foreach_addcdiv_(mom, grads, denominators, value=self.lr)
        torch._foreach_sub_(params, mom)


class MovingAverage:
    """Parameters and float buffers, decay min(0.9999, (1+step)/(10+step))."""

    def __init__(self, model):
        self.values = list(model.parameters())
        self.values += [b for b in model.buffers() if b.is_floating_point()]
        self.shadows = [v.detach().clone() for v in self.values]

    @torch.no_grad()
    def apply(self, step):
        decay = min(0.9999, (1.0 + step) / (10.0 + step))
        torch._foreach_mul_(self.shadows, decay)
        torch._foreach_add_(self.shadows, self.values, alpha=1.0 - decay)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="small", choices=sorted(DEFAULT_SIZE))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image_size", type=int, default=0)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--channels_last", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = Small(args.classes) if args.model == "small" else Torchvision(args.model, args.classes)
    model.to(device).train()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    size = args.image_size or DEFAULT_SIZE[args.model]
    images = (torch.rand(args.batch, 3, size, size) * 2 - 1).to(device).contiguous(memory_format=fmt)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    labels = torch.randint(args.classes, (args.batch,), dtype=torch.long).to(device)
    decayed = [p for p in model.parameters() if p.dim() >= 2]  # conv and linear weights

    optimizer = RmsPropTf(model.parameters(), INITIAL_LEARNING_RATE)
    averages = MovingAverage(model)
    step = 0

    def train_step():
        nonlocal step
        with autocast:
            logits, aux_logits = model(images)
        logits = logits.float()
        aux_logits = aux_logits.float() if aux_logits is not None else None
        total = smoothed_cross_entropy(logits, labels, LABEL_SMOOTHING)
        if aux_logits is not None:
            total = total + AUX_WEIGHT * smoothed_cross_entropy(aux_logits, labels, LABEL_SMOOTHING)
        l2 = decayed[0].float().square().sum()
        for w in decayed[1:]:
            l2 = l2 + w.float().square().sum()
        total = total + l2 * (WEIGHT_DECAY / 2.0)
        optimizer.zero_grad()
        total.backward()
        optimizer.lr = INITIAL_LEARNING_RATE * DECAY_FACTOR ** (step // DECAY_STEPS)
        optimizer.step()
        averages.apply(step)
        step += 1
        return total

    for _ in range(args.warmup):
        train_step().item()  # item(): wait for the device
    rates = []
    loss = float("nan")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            last = train_step()
        loss = last.item()
        rates.append(args.steps / (time.perf_counter() - start))
    best = max(rates)
    print(json.dumps({
        "impl": "python", "model": args.model, "device": args.device,
        "precision": args.precision, "channels_last": args.channels_last, "batch": args.batch,
        "image_size": size, "threads": args.threads, "steps": args.steps,
        "steps_per_s": [round(r, 6) for r in rates],
        "best_steps_per_s": round(best, 4), "best_images_per_s": round(best * args.batch, 2),
        "final_loss": round(loss, 5)}, separators=(",", ":")))
    return 0 if math.isfinite(loss) else 1


if __name__ == "__main__":
    sys.exit(main())

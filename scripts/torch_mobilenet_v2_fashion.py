#!/usr/bin/env python3
"""PyTorch's accuracy with qforge's MobileNetV2 Fashion-MNIST recipe, for comparison.

configs/mobilenet_v2_fashion.json in PyTorch 1.13 (Debian's python3-torch and
python3-torchvision): torchvision's float MobileNetV2 (ReLU6, dropout 0.2) with
qforge's small stem (1 input channel, stride-1 first conv, stride-1 first block
of the 24-channel stage), SGD with Nesterov momentum, OneCycleLR to 0.1 (its
defaults, as qforge's one_cycle), weight decay 4e-5 on weights only, batch 128,
random crop with 2 px of zero padding and horizontal flips. Prints the test
top-1 after each epoch and the training images/s.

  python3 scripts/torch_mobilenet_v2_fashion.py [--epochs 2] [--seed 0] [--threads 2]
"""
import argparse, gzip, struct, time
import numpy as np
import torch, torch.nn as nn
from torchvision.models import mobilenet_v2

DATA = "/usr/share/datasets/fashion-mnist/"

def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    dims = struct.unpack(">" + "I" * (magic & 0xFF), raw[4:4 + 4 * (magic & 0xFF)])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)

def model():
    m = mobilenet_v2(weights=None, num_classes=10, dropout=0.2)
    m.features[0][0] = nn.Conv2d(1, 32, 3, 1, 1, bias=False)
    m.features[2].conv[1][0].stride = (1, 1)
    return m

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2); ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(a.seed); rng = np.random.default_rng(a.seed)
    xtr, ytr = idx(DATA + "train-images-idx3-ubyte.gz"), idx(DATA + "train-labels-idx1-ubyte.gz")
    xte, yte = idx(DATA + "t10k-images-idx3-ubyte.gz"), idx(DATA + "t10k-labels-idx1-ubyte.gz")
    if a.limit: xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    mean, std = 0.2860, 0.3530
    norm = lambda u8: (torch.from_numpy(u8.astype(np.float32) / 255) - mean) / std
    m = model()
    decay = [p for p in m.parameters() if p.dim() > 1]
    rest = [p for p in m.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 4e-5}, {"params": rest, "weight_decay": 0}],
                          lr=0.1, momentum=0.9, nesterov=True)
    bs = 128; steps = (len(xtr) + bs - 1) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps * a.epochs)
    crit = nn.CrossEntropyLoss()
    padded = np.pad(xtr, ((0, 0), (2, 2), (2, 2)))  # zero pixels before normalization, as torchvision
    for epoch in range(a.epochs):
        m.train(); order = rng.permutation(len(xtr)); t0 = time.perf_counter()
        for s in range(steps):
            ids = order[s * bs:(s + 1) * bs]
            r, c = rng.integers(0, 5, len(ids)), rng.integers(0, 5, len(ids))
            flip = rng.random(len(ids)) < 0.5
            batch = np.stack([padded[i, r[j]:r[j] + 28, c[j]:c[j] + 28] for j, i in enumerate(ids)])
            batch[flip] = batch[flip][:, :, ::-1]
            x = norm(batch).unsqueeze(1); y = torch.from_numpy(ytr[ids].astype(np.int64))
            opt.zero_grad(); loss = crit(m(x), y); loss.backward(); opt.step(); sched.step()
            if s % 50 == 0: print(f"epoch {epoch + 1} step {s}/{steps} loss {loss.item():.4f}", flush=True)
        secs = time.perf_counter() - t0
        m.eval(); correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 256):
                correct += (m(norm(xte[i:i + 256]).unsqueeze(1)).argmax(1).numpy() == yte[i:i + 256]).sum()
        print(f"epoch {epoch + 1}: test top-1 {100 * correct / len(xte):.2f}% "
              f"({len(xtr) / secs:.1f} train img/s, torch {torch.__version__}, {a.threads} threads)", flush=True)

if __name__ == "__main__":
    main()

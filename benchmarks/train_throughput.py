"""Training throughput of the proxy trainer vs a plain DataLoader + torchvision-transforms loop, same model.

Prints images/s of both (the proxy in fp32, its default, and bf16 autocast) on the same data (digits at the
given resolution, one model init), the machine's
measured float32 GEMM FLOP/s, and the ratios: proxy / plain, and each loop's training FLOP/s (≈ 6 × MACs per
image) as a fraction of the GEMM figure. Runs alternate (proxy, plain, proxy, ...) and the best of each is
kept, since a shared CPU is noisy. Target: proxy ≥ 1.3× plain.

    python benchmarks/train_throughput.py [--width 16] [--resolution 32] [--epochs 1] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from pisearch.cost import count
from pisearch.data import ImageData, load_dataset
from pisearch.spec import resnet
from pisearch.train import Fidelity, seeded_build, train_proxy
from pisearch.train.batches import NORM_MEAN, NORM_STD


class PILImages(Dataset):
    """uint8 tensors served as PIL images through torchvision transforms, one image at a time."""

    def __init__(self, data: ImageData, transform) -> None:
        self.x, self.y, self.transform = data.x.permute(0, 2, 3, 1).numpy(), data.y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        from PIL import Image

        img = self.x[i][..., 0] if self.x.shape[-1] == 1 else self.x[i]
        return self.transform(Image.fromarray(img)), self.y[i]


def plain_loop(model: torch.nn.Module, data: ImageData, fidelity: Fidelity, epochs: int) -> float:
    """Images/s of the textbook loop: DataLoader(num_workers=0) + RandomCrop/Flip/ToTensor/Normalize, NCHW."""
    side = data.x.shape[-1]
    tf = transforms.Compose([transforms.RandomCrop(side, padding=side // 8), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize((NORM_MEAN,) * 3, (NORM_STD,) * 3)])
    loader = DataLoader(PILImages(data, tf), batch_size=fidelity.batch_size, shuffle=True, num_workers=0,
                        drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=fidelity.lr, momentum=fidelity.momentum,
                          nesterov=fidelity.nesterov, weight_decay=fidelity.weight_decay)
    model.train()
    images, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y, label_smoothing=fidelity.label_smoothing)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), fidelity.grad_clip)
            opt.step()
            images += len(y)
    return images / (time.perf_counter() - t0)


def gemm_flops(n: int = 2048, reps: int = 10) -> float:
    """Measured float32 matmul FLOP/s (best of ``reps``) on an ``n × n`` product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16, help="ResNet18-shaped widths m, 2m, 4m, 8m")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    w = args.width
    spec = resnet((w, 2 * w, 4 * w, 8 * w), (2, 2, 2, 2), resolution=args.resolution)
    splits = load_dataset("digits", resolution=args.resolution)
    data, val = splits.train, splits.val
    fid = Fidelity(epochs=args.epochs, batch_size=128, augment=True, bn_recalibrate=False)
    flops_per_image = 6 * count(spec).macs  # forward 2·MACs, backward ≈ 2× forward
    bf16 = fid.model_copy(update={"precision": "bf16"})
    best = {"proxy trainer (fp32)": 0.0, "proxy trainer (bf16)": 0.0, "plain DataLoader loop": 0.0}
    for _ in range(args.repeats):
        for name, f in (("proxy trainer (fp32)", fid), ("proxy trainer (bf16)", bf16)):
            best[name] = max(best[name], train_proxy(seeded_build(spec, f), data, val, f).images_per_second)
        best["plain DataLoader loop"] = max(best["plain DataLoader loop"],
                                            plain_loop(seeded_build(spec, fid), data, fid, args.epochs))
    gemm = gemm_flops()
    print(f"model: ResNet18-shaped, widths {w}-{2 * w}-{4 * w}-{8 * w}, {args.resolution}² digits, "
          f"{count(spec).macs / 1e6:.1f} M MACs/image; {len(data)} images × {args.epochs} epoch(s), batch 128, "
          f"{args.threads} threads, best of {args.repeats}")
    print(f"GEMM (2048² float32 matmul): {gemm / 1e9:8.1f} GFLOP/s")
    plain = best["plain DataLoader loop"]
    for name, ips in best.items():
        print(f"{name:22s} {ips:8.1f} images/s = {ips * flops_per_image / 1e9:6.1f} GFLOP/s "
              f"({ips * flops_per_image / gemm:5.1%} of GEMM), {ips / plain:.2f}× plain")
    print("target: proxy (fp32 default) ≥ 1.3× plain")


if __name__ == "__main__":
    main()

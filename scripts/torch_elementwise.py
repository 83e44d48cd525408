"""PyTorch's element-wise throughput beside a plain copy, at the engine benchmark's SiLU shape.

Not part of the project or CI: it needs torch (pip install torch). Prints GB/s (bytes read +
written) of torch's SiLU, add and copy_ on a [16, 128, 16, 16] tensor (2 MiB), median of repeated runs,
for 1 and 2 threads, so `customize bench engine`'s SiLU figure can be set beside the reference
library's on the same machine.

    python3 scripts/torch_elementwise.py
"""
import argparse
import time

import torch


def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--elements", type=int, default=16 * 128 * 16 * 16)
    args = parser.parse_args()
    n = args.elements
    x = (torch.arange(n, dtype=torch.float32) % 97) / 97 - 0.5
    y = torch.empty_like(x)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        silu = median_seconds(lambda: torch.ops.aten.silu.out(x, out=y), args.repeats)
        add = median_seconds(lambda: torch.add(x, x, out=y), args.repeats)
        copy = median_seconds(lambda: y.copy_(x), args.repeats)
        print(f"{threads} thread(s), {n * 4 / 2**20:.0f} MiB: silu {8 * n / silu / 1e9:.1f} GB/s, "
              f"add {12 * n / add / 1e9:.1f} GB/s, copy {8 * n / copy / 1e9:.1f} GB/s; silu / copy {copy / silu:.2f}")


if __name__ == "__main__":
    main()

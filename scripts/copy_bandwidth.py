"""Memory copy bandwidth of this machine: the other ceiling beside matmul.

    python3 scripts/copy_bandwidth.py   (needs numpy)
"""
import time

import numpy as np

a = np.ones(64 * 1024 * 1024, dtype=np.float32)  # 256 MiB
b = np.empty_like(a)
for _ in range(2):
    np.copyto(b, a)
times = []
for _ in range(5):
    t = time.perf_counter()
    np.copyto(b, a)
    times.append(time.perf_counter() - t)
t = sorted(times)[len(times) // 2]
print(f"copy 256 MiB: {a.nbytes / t / 1e9:.1f} GB/s copied ({2 * a.nbytes / t / 1e9:.1f} GB/s read + write), median of 5")

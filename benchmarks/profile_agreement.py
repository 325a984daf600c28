"""How well a profile's estimates agree with its measured times: read `onebyone profile --format json`.

Prints, per file: the whole-model estimate over the measured time, and the Spearman rank
correlation of estimated and measured time over the leaf layers (all, and the convolutions).

    python benchmarks/profile_agreement.py profile_resnet50_h200.json profile_resnet50_h200_calibrated.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks."""
    ra, rb = ranks(a), ranks(b)
    n = len(ra)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def main() -> None:
    for path in sys.argv[1:]:
        data = json.loads(Path(path).read_text())
        rows = [r for r in data["rows"] if r["is_leaf"] and r.get("measured_time_s") and r.get("est_time_s")]
        convs = [r for r in rows if r["type"] == "Conv2d"]
        rho = spearman([r["est_time_s"] for r in rows], [r["measured_time_s"] for r in rows])
        rho_conv = spearman([r["est_time_s"] for r in convs], [r["measured_time_s"] for r in convs])
        print(f"{path}: {data['device_profile']}\n  whole model: estimated {1000 * data['est_time_s']:.3f} ms, "
              f"measured {1000 * data['measured_time_s']:.3f} ms (estimate/measured {data['est_time_s'] / data['measured_time_s']:.2f})\n"
              f"  Spearman over {len(rows)} leaf layers {rho:.2f}; over {len(convs)} convolutions {rho_conv:.2f}")


if __name__ == "__main__":
    main()

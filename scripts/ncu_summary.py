#!/usr/bin/env python3
"""ncu_summary.py: summarise an `ncu --csv --page raw --print-units base` file (scripts/gpu_profile.sh):
one line per kernel (name without its parameter list, and grid size): launches, summed duration, DRAM bytes
read + written, the achieved DRAM rate and ncu's DRAM throughput (% of peak), then the totals."""
import csv
import sys
from collections import OrderedDict


def num(s):
    try:
        return float(s.replace(",", ""))
    except (ValueError, AttributeError):
        return 0.0


def main(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f)]
    head = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
    if head is None:
        sys.exit(f"{path}: no 'Kernel Name' header (did ncu profile anything?)")
    cols = rows[head]
    ix = {c: cols.index(c) for c in cols}
    data = [r for r in rows[head + 1:] if len(r) == len(cols) and r[ix["ID"]].strip().isdigit()]
    if not data:
        sys.exit(f"{path}: no kernel rows")
    groups = OrderedDict()
    for r in data:
        name = r[ix["Kernel Name"]].split("(")[0].strip()
        key = (name, r[ix["launch__grid_size"]])
        g = groups.setdefault(key, {"n": 0, "ns": 0.0, "bytes": 0.0, "dram": 0.0, "regs": r[ix["launch__registers_per_thread"]]})
        g["n"] += 1
        g["ns"] += num(r[ix["gpu__time_duration.sum"]])
        g["bytes"] += num(r[ix["dram__bytes_read.sum"]]) + num(r[ix["dram__bytes_write.sum"]])
        g["dram"] += num(r[ix["dram__throughput.avg.pct_of_peak_sustained_elapsed"]])
    print(f"{'kernel':<58} {'grid':>6} {'regs':>4} {'n':>4} {'total us':>9} {'us each':>8} {'MB':>9} {'GB/s':>6} {'dram%':>5}")
    T = B = 0.0
    for (name, grid), g in sorted(groups.items(), key=lambda kv: -kv[1]["ns"]):
        T += g["ns"]
        B += g["bytes"]
        gbs = g["bytes"] / g["ns"] if g["ns"] else 0.0
        print(f"{name[:58]:<58} {grid:>6} {g['regs']:>4} {g['n']:>4} {g['ns'] / 1e3:9.1f} {g['ns'] / 1e3 / g['n']:8.2f} "
              f"{g['bytes'] / 1e6:9.1f} {gbs:6.0f} {g['dram'] / g['n']:5.1f}")
    print(f"total: {len(data)} kernels, {T / 1e3:.1f} us of kernel time (serialized, no launch gaps), "
          f"{B / 1e6:.1f} MB of DRAM traffic, {B / T if T else 0:.0f} GB/s over the kernel time")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: ncu_summary.py NCU_RAW.csv")
    main(sys.argv[1])

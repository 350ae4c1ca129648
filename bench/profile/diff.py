#!/usr/bin/env python3
"""Per-function inclusive instructions of one operation: the difference between two callgrind
runs of the same scenario (N1 and N2 operations), divided by N2-N1, biggest first.
Usage: diff.py A.cg B.cg N1 N2 [top]"""
import os, re, subprocess, sys
EXCL = os.environ.get("EXCLUSIVE") == "1"

def inclusive(path):
    out = subprocess.check_output(
        ["callgrind_annotate", "--inclusive=" + ("no" if EXCL else "yes"), "--threshold=100", path], text=True)
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(?:\S+:)?(.+?)(?:\s+\[.*\])?$", line)
        if m and not line.strip().startswith("Ir"):
            costs[m.group(2)] = costs.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return costs

a, b, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
top = int(sys.argv[5]) if len(sys.argv) > 5 else 60
ca, cb = inclusive(a), inclusive(b)
rows = sorted(((cb.get(k, 0) - ca.get(k, 0)) / (n2 - n1), k) for k in cb)
for cost, name in reversed(rows[-top:]):
    print(f"{cost:12,.0f}  {name[:150]}")

#!/usr/bin/env python3
"""Compares two benchmark result files (bench/results/*.json) side by side: rate, share of the
bare route and p99 per scenario and database, with the change in percent, then memory.

    bench/compare.py OLD.json NEW.json
    bench/compare.py NEW.json          # against the newest earlier file in the same folder

Result files are named <UTC date-time>-<commit>.json, so "earlier" is name order. Python 3
standard library only.
"""

import json
import sys
from pathlib import Path


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def earlier(path):
    """The newest result file named before `path` in its folder, or None."""
    path = Path(path)
    older = sorted(p for p in path.parent.glob("*.json") if p.name < path.name)
    return older[-1] if older else None


def change(old, new):
    if old is None or new is None:
        return "–"
    if old == 0:
        return "–" if new == 0 else "new"
    return f"{100.0 * (new - old) / old:+.1f}%"


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def describe(r, path):
    dirty = " + changes" if r.get("dirty") else ""
    machine = r.get("machine", {})
    return (
        f"{path}: commit {r.get('commit', '?')[:7]}{dirty}, {r.get('date', '?')}, "
        f"{r.get('seconds', '?')} s per scenario, load {machine.get('loadavg', '?')}"
    )


def rows(old, new):
    """(db, scenario, old scenario or None, new scenario or None), in the new file's order."""
    index = lambda r: {(s["db"], s["scenario"]): s for s in r.get("scenarios", [])}
    a, b = index(old), index(new)
    keys = list(b) + [k for k in a if k not in b]
    return [(db, sc, a.get((db, sc)), b.get((db, sc))) for db, sc in keys]


def table(headers, lines):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines)]
    out = [" | ".join(str(h).ljust(w) for h, w in zip(headers, widths))]
    out.append("-+-".join("-" * w for w in widths))
    for line in lines:
        cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        out.append(" | ".join(cells))
    return "\n".join(out)


def main(argv):
    if len(argv) == 2:
        new_path = Path(argv[1])
        old_path = earlier(new_path)
        if old_path is None:
            print(f"no result file earlier than {new_path} in {new_path.parent}", file=sys.stderr)
            return 1
    elif len(argv) == 3:
        old_path, new_path = Path(argv[1]), Path(argv[2])
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    old, new = load(old_path), load(new_path)
    print("old: " + describe(old, old_path))
    print("new: " + describe(new, new_path))
    print()
    get = lambda s, k: None if s is None else s.get(k)
    pct = lambda v: None if v is None else 100.0 * v
    lines = []
    for db, sc, a, b in rows(old, new):
        lines.append([
            db, sc,
            fmt(get(a, "rps"), ",.0f"), fmt(get(b, "rps"), ",.0f"),
            change(get(a, "rps"), get(b, "rps")),
            fmt(pct(get(a, "ratio_to_bare")), ".0f"), fmt(pct(get(b, "ratio_to_bare")), ".0f"),
            fmt(get(a, "p99_ms"), ".2f"), fmt(get(b, "p99_ms"), ".2f"),
            change(get(a, "p99_ms"), get(b, "p99_ms")),
            fmt(get(a, "errors"), "d"), fmt(get(b, "errors"), "d"),
        ])
    print(table(["db", "scenario", "old rate", "new rate", "change",
                 "old % bare", "new % bare", "old p99 ms", "new p99 ms", "change",
                 "old err", "new err"], lines))
    mem_old, mem_new = old.get("memory", {}), new.get("memory", {})
    lines = []
    order = lambda db: ({"sqlite": 0, "postgres": 1}.get(db, 2), db)
    for db in sorted(set(mem_old) | set(mem_new), key=order):
        for field in ("idle_mb", "peak_mb"):
            a, b = mem_old.get(db, {}).get(field), mem_new.get(db, {}).get(field)
            lines.append([db, field, fmt(a, ".1f"), fmt(b, ".1f"), change(a, b)])
    if lines:
        print()
        print(table(["db", "memory", "old MB", "new MB", "change"], lines))
    print("\nRates move with the machine's load: compare the share of the bare route (% bare) "
          "across runs, the rates only between runs made in the same hour.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Compares two relcap output folders file by file and column by column.

Usage: python3 compare_outputs.py BEFORE_DIR AFTER_DIR [SUBDIR ...]

For every Parquet file present in both (under the given stage subfolders, default all), prints
per column the number of rows that differ and the largest relative change
|after - before| / max(|before|, tiny) of numeric columns (nulls must match; NaN equals NaN).
Text and boolean columns are compared for equality. JSON files are compared number by number
the same way. Files only on one side are listed. Exit status 0 always: the report is the output.
"""
import json
import math
import os
import sys

import pyarrow.parquet as pq


def rel(a, b):
    if a == b:
        return 0.0
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return 0.0
    d = abs(a - b)
    s = max(abs(a), abs(b))
    return d / s if s > 0 else d


def compare_values(xs, ys):
    """(differing rows, largest relative change or None for non-numeric)."""
    n_diff = 0
    worst = 0.0
    numeric = False
    for a, b in zip(xs, ys):
        if isinstance(a, bool) or isinstance(b, bool) or not (
            isinstance(a, (int, float)) and isinstance(b, (int, float))
        ):
            if a != b and not (a is None and b is None):
                n_diff += 1
                if a is None or b is None:
                    worst = math.inf
            continue
        numeric = True
        r = rel(float(a), float(b))
        if r > 0:
            n_diff += 1
            worst = max(worst, r)
    return n_diff, (worst if numeric or worst == math.inf else None)


def walk_json(prefix, a, b, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            walk_json(f"{prefix}.{k}", a.get(k), b.get(k), out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.setdefault(prefix, [0, math.inf])[0] += 1
        for x, y in zip(a, b):
            walk_json(prefix + "[]", x, y, out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        r = rel(float(a), float(b))
        e = out.setdefault(prefix, [0, 0.0])
        if r > 0:
            e[0] += 1
            e[1] = max(e[1], r)
    else:
        e = out.setdefault(prefix, [0, 0.0])
        if a != b:
            e[0] += 1
            e[1] = math.inf


def files(root, subdirs):
    out = set()
    for sub in subdirs or [""]:
        base = os.path.join(root, sub)
        for d, _, fs in os.walk(base):
            if "/.cache" in d or d.endswith(".cache"):
                continue
            for f in fs:
                if f.endswith(".parquet") or f.endswith(".json"):
                    out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def main():
    before, after, subdirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    fb, fa = files(before, subdirs), files(after, subdirs)
    for f in sorted(fb ^ fa):
        print(f"ONLY IN {'before' if f in fb else 'after'}: {f}")
    identical = 0
    for f in sorted(fb & fa):
        pb, pa = os.path.join(before, f), os.path.join(after, f)
        if open(pb, "rb").read() == open(pa, "rb").read():
            identical += 1
            continue
        if f.endswith(".json"):
            if f.endswith("manifest.json") or f.endswith("summary.json"):
                # Timings and hashes differ between runs; compare only model facts below.
                pass
            out = {}
            walk_json("", json.load(open(pb)), json.load(open(pa)), out)
            diffs = {k: v for k, v in out.items() if v[0] > 0}
            ignore = ("seconds", "hash", "started", "finished", "elapsed", "duration", "blake3", "bytes", "time")
            diffs = {k: v for k, v in diffs.items() if not any(s in k for s in ignore)}
            print(f"{f}: JSON differs in {len(diffs)} fields")
            for k, (n, w) in sorted(diffs.items()):
                print(f"    {k}: {n} values differ, largest relative change {w:.3g}")
            continue
        tb, ta = pq.read_table(pb), pq.read_table(pa)
        if tb.schema != ta.schema or tb.num_rows != ta.num_rows:
            print(f"{f}: SCHEMA OR ROW COUNT DIFFERS ({tb.num_rows} vs {ta.num_rows} rows)")
            continue
        lines = []
        for name in tb.column_names:
            n, w = compare_values(tb.column(name).to_pylist(), ta.column(name).to_pylist())
            if n:
                lines.append(f"    {name}: {n} of {tb.num_rows} rows differ" +
                             ("" if w is None else f", largest relative change {w:.3g}"))
        print(f"{f}: {tb.num_rows} rows; {len(lines)} columns differ (the bytes differ)")
        for l in lines:
            print(l)
    print(f"{identical} of {len(fb & fa)} common files byte-identical")


if __name__ == "__main__":
    main()

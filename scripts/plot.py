#!/usr/bin/env python3
"""Tables and SVG plots from criterion's estimates (standard library only).

Reads target/criterion/<group>/<implementation>/<n>/new/{estimates,benchmark}.json for
the groups the fanout benches write, and produces:

- benches/results/<group>.svg: cost per delivery (ns, log scale) vs subscriber count
  (log scale), one line per implementation;
- benches/results/tables.md: per group, ns per broadcast, ns per delivery, and each
  peer's time as a multiple of fanout's (>1 = fanout is faster), plus a linear fit
  (fixed cost per broadcast, marginal cost per delivery from n=256 to n=4096).

Statistic: the *fastest* of criterion's samples (sample.json: min of time/iterations;
each sample is many iterations), which is the least disturbed by other processes on a
shared machine; criterion's mean (estimates.json) is shown beside it in the tables.
Use --mean to base everything on the mean instead.

Usage: python3 scripts/plot.py [--mean] [criterion_dir] [out_dir]
"""

import json
import math
import os
import sys

GROUPS = [
    "callback_fanout_64B",
    "callback_fanout_4KiB",
    "channel_fanout_e2e",
    "broadcast_variants",
]
REFERENCE = {
    "callback_fanout_64B": "fanout",
    "callback_fanout_4KiB": "fanout",
    "channel_fanout_e2e": "fanout_pubsub",
    "broadcast_variants": "broadcast_topic",
}
COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


USE_MEAN = "--mean" in sys.argv


def load(criterion_dir, group):
    """{implementation: {n: ns per iteration}} (fastest sample, or mean with --mean),
    and the means alongside."""
    data, means = {}, {}
    base = os.path.join(criterion_dir, group)
    if not os.path.isdir(base):
        return data, means
    for impl in sorted(os.listdir(base)):
        impl_dir = os.path.join(base, impl)
        if impl == "report" or not os.path.isdir(impl_dir):
            continue
        for param in os.listdir(impl_dir):
            est = os.path.join(impl_dir, param, "new", "estimates.json")
            if not os.path.exists(est):
                continue
            try:
                n = int(param)
            except ValueError:
                continue
            with open(est) as f:
                mean = json.load(f)["mean"]["point_estimate"]
            with open(os.path.join(impl_dir, param, "new", "sample.json")) as f:
                sample = json.load(f)
            fastest = min(t / i for t, i in zip(sample["times"], sample["iters"]))
            data.setdefault(impl, {})[n] = mean if USE_MEAN else fastest
            means.setdefault(impl, {})[n] = mean
    return data, means


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def table(group, data, means):
    ref = REFERENCE[group]
    impls = [ref] + sorted(i for i in data if i != ref)
    ns = sorted({n for d in data.values() for n in d})
    stat = "criterion mean" if USE_MEAN else "fastest of 20 samples (criterion mean in brackets)"
    lines = [f"### {group}", "", f"Per broadcast: {stat}; ns per delivery; **peer / {ref}** (> 1: fanout faster).", ""]
    header = "| n | " + " | ".join(impls) + " |"
    lines += [header, "|" + "---|" * (len(impls) + 1)]
    for n in ns:
        cells = []
        base = data.get(ref, {}).get(n)
        for impl in impls:
            t = data.get(impl, {}).get(n)
            if t is None:
                cells.append("—")
                continue
            cell = f"{fmt_ns(t)} [{fmt_ns(means[impl][n])}] {t / n:.2f}/dlv"
            if USE_MEAN:
                cell = f"{fmt_ns(t)} {t / n:.2f}/dlv"
            if impl != ref and base:
                cell += f" **{t / base:.2f}×**"
            cells.append(cell)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("")
    fits = {}
    for impl in impls:
        d = data.get(impl, {})
        if 256 in d and 4096 in d and 1 in d:
            slope = (d[4096] - d[256]) / (4096 - 256)
            fixed = d[1] - slope
            fits[impl] = (slope, fixed)
    if fits:
        lines.append("Linear fit t(n) = fixed + n × per-delivery (slope from n=256 to n=4096):")
        lines.append("")
        lines.append(f"| implementation | per delivery | fixed per broadcast | ratio per delivery vs {ref} |")
        lines.append("|---|---|---|---|")
    for impl, (slope, fixed) in fits.items():
        ratio = slope / fits[ref][0] if ref in fits and fits[ref][0] > 0 else float("nan")
        lines.append(f"| {impl} | {slope:.2f} ns | {fixed:.1f} ns | {ratio:.2f}× |")
    lines.append("")
    return "\n".join(lines)


def svg(group, data, path):
    w, h, left, right, top, bottom = 720, 440, 70, 190, 40, 50
    points = [(n, t / n) for d in data.values() for n, t in d.items()]
    if not points:
        return
    xs = [math.log10(n) for n, _ in points]
    ys = [math.log10(v) for _, v in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1

    def px(n):
        return left + (math.log10(n) - x0) / (x1 - x0) * (w - left - right)

    def py(v):
        return top + (1 - (math.log10(v) - y0) / (y1 - y0)) * (h - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2 - right / 2}" y="20" text-anchor="middle" font-size="14">'
        f"{group}: ns per delivery vs subscribers (log–log, "
        f"{'mean' if USE_MEAN else 'fastest sample'})</text>",
    ]
    for e in range(y0, y1 + 1):
        y = py(10**e)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10**e:g}</text>')
    ns = sorted({n for n, _ in points})
    for n in ns:
        x = px(n)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{h - bottom}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{h - bottom + 16}" text-anchor="middle">{n}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">subscribers</text>')
    out.append(
        f'<text x="16" y="{(top + h - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + h - bottom) / 2})">ns per delivery</text>'
    )
    ref = REFERENCE[group]
    impls = [ref] + sorted(i for i in data if i != ref)
    for k, impl in enumerate(impls):
        d = data.get(impl)
        if not d:
            continue
        colour = COLOURS[k % len(COLOURS)]
        pts = " ".join(f"{px(n):.1f},{py(t / n):.1f}" for n, t in sorted(d.items()))
        width = 3 if impl == ref else 1.5
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{width}"/>')
        for n, t in sorted(d.items()):
            out.append(f'<circle cx="{px(n):.1f}" cy="{py(t / n):.1f}" r="3" fill="{colour}"/>')
        ly = top + 10 + 18 * k
        out.append(f'<line x1="{w - right + 12}" y1="{ly}" x2="{w - right + 32}" y2="{ly}" stroke="{colour}" stroke-width="{width}"/>')
        out.append(f'<text x="{w - right + 38}" y="{ly + 4}">{impl}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    criterion_dir = args[0] if len(args) > 0 else "target/criterion"
    out_dir = args[1] if len(args) > 1 else "benches/results"
    os.makedirs(out_dir, exist_ok=True)
    tables = []
    for group in GROUPS:
        data, means = load(criterion_dir, group)
        if not data:
            continue
        tables.append(table(group, data, means))
        svg(group, data, os.path.join(out_dir, f"{group}.svg"))
    with open(os.path.join(out_dir, "tables.md"), "w") as f:
        f.write("<!-- generated by scripts/plot.py from target/criterion -->\n\n")
        f.write("\n".join(tables))
    print("\n".join(tables))


if __name__ == "__main__":
    main()

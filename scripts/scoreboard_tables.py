#!/usr/bin/env python3
"""The docs' scoreboard tables, generated from one scoreboard run (standard library only).

Reads benches/results/scoreboard.json (written by
`cargo run --release -p fanout-benches --bin scoreboard`) and writes:

- benches/results/scoreboard.md: the full table;
- PERFORMANCE.md, between `<!-- scoreboard:begin -->` and `<!-- scoreboard:end -->`: the
  run's machine, commit and load, then the full table;
- README.md, between `<!-- scoreboard-summary:begin -->` and
  `<!-- scoreboard-summary:end -->`: one line per scenario.

So the docs' ratios are always those of one run, and cannot drift from it. With --check,
nothing is written; the exit status is 1 if a file differs from what the run gives (CI).

Usage: python3 scripts/scoreboard_tables.py [--check] [scoreboard.json]
"""

import json
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CHECK = "--check" in sys.argv
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SOURCE = ARGS[0] if ARGS else os.path.join(ROOT, "benches", "results", "scoreboard.json")
COMMAND = "cargo run --release -p fanout-benches --bin scoreboard"


def md(name):
    """A contender's name for markdown: type names in backticks (so `<…>` is not HTML)."""
    name = re.sub(r"(\S*<\S*>)", r"`\1`", name)
    return name.replace(" &str", " `&str`")


def cost(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    if ns >= 100:
        return f"{ns:.0f} ns"
    return f"{ns:.2f} ns"


def rate(ns):
    per_s = 1e9 / ns
    return f"{per_s / 1e6:.2f}M/s" if per_s >= 1e6 else f"{per_s / 1e3:.0f}k/s"


def ratio(x):
    if x < 0.001:
        return "<0.001"
    return f"{x:.3f}" if x < 0.1 else f"{x:.2f}"


def shown_cost(scenario, row, per=False):
    text = cost(row["cost_ns"]["median"])
    if per:
        text += f" per {scenario['unit']}"
    if scenario["rate"]:
        text += f" ({rate(row['cost_ns']['median'])})"
    return text


def versus(row):
    """A contender against fanout, in words, for the summary."""
    r = row["ratio"]["median"]
    if row["role"] == "floor":
        return f"{md(row['name'])} (floor) {ratio(r)}×"
    if row["role"] == "fanout":
        return f"{md(row['name'])} {ratio(r)}×"
    if 0.95 <= r < 1.05:
        return f"{md(row['name'])} level ({ratio(r)}×)"
    if r >= 1:
        return f"{md(row['name'])} {r:.1f}× slower"
    return f"{md(row['name'])} {1 / r:.1f}× faster"


def reading(row, reference):
    """What a ratio (row's time ÷ the reference's) says, in words."""
    r = row["ratio"]["median"]
    if row["role"] == "fanout":
        return f"{ratio(r)}× the time of {md(reference)}"
    if row["role"] == "floor":
        return f"fanout at {1 / r:.2f}× the floor"
    if 0.95 <= r < 1.05:
        return "level"
    if r >= 1:
        return f"fanout **{r:.1f}× faster**"
    return f"fanout **{1 / r:.1f}× slower**"


def header(run):
    m = run["machine"]
    load = lambda l: f"{l[0]:.2f} / {l[1]:.2f} / {l[2]:.2f}"
    return (
        f"Measured {run['started_utc']} at commit `{run['commit']}` with `{COMMAND}` "
        f"({run['seconds']:.0f} s): {m['cores']} cores of `{m['cpu']}` (as /proc/cpuinfo "
        f"names it), {m['memory_gib']} GiB, Linux {m['kernel']}, {m['rustc']}. Load average "
        f"(1 / 5 / 15 min) {load(run['load_start'])} at the start, {load(run['load_end'])} "
        f"at the end. Every scenario: one warm-up round, then {run['rounds']} rounds in "
        f"which each contender runs once; a ratio is a contender's time ÷ fanout's *in the "
        f"same round* (> 1: fanout is faster), given as the median of the rounds "
        f"[minimum–maximum]; costs are medians."
    )


def full_table(run):
    lines = [
        "| scenario (cost per …) | fanout | contender | its cost | its time ÷ fanout's | reading |",
        "|---|---|---|---|---|---|",
    ]
    for s in run["scenarios"]:
        ref = s["rows"][0]
        for k, row in enumerate(s["rows"][1:]):
            r = row["ratio"]
            role = {"peer": "", "floor": " (floor)", "fanout": ""}[row["role"]]
            # The scenario and fanout's cost on its first row only.
            title = f"{s['title']} (per {s['unit']})" if k == 0 else ""
            fanout = shown_cost(s, ref) if k == 0 else ""
            lines.append(
                f"| {title} | {fanout} | {md(row['name'])}{role} | "
                f"{shown_cost(s, row)} | **{ratio(r['median'])}×** "
                f"[{ratio(r['min'])}–{ratio(r['max'])}] | {reading(row, ref['name'])} |"
            )
    return "\n".join(lines)


def summary_table(run):
    lines = [
        "| scenario | fanout | the others, same run (a floor or a fanout variant: its time ÷ fanout's) |",
        "|---|---|---|",
    ]
    for s in run["scenarios"]:
        ref = s["rows"][0]
        others = ", ".join(versus(row) for row in s["rows"][1:])
        lines.append(f"| {s['title']} | {shown_cost(s, ref, per=True)} | {others} |")
    m = run["machine"]
    lines.append("")
    lines.append(
        f"One run of `{COMMAND}` ({run['started_utc']}, commit `{run['commit']}`, "
        f"{m['cores']} cores of `{m['cpu']}`, load average {run['load_start'][0]:.2f} at "
        f"the start); medians of {run['rounds']} same-round ratios, with their spread, in "
        f"[PERFORMANCE.md](PERFORMANCE.md#scoreboard)."
    )
    return "\n".join(lines)


def splice(path, name, body):
    """Replaces the text between the markers `name` in `path`; returns whether it changed."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if begin not in text or end not in text:
        sys.exit(f"{path}: markers {begin} / {end} not found")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{begin}\n<!-- generated by scripts/scoreboard_tables.py from benches/results/scoreboard.json: do not edit -->\n{body}\n{end}{tail}"
    if new == text:
        return False
    if not CHECK:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return True


def main():
    with open(SOURCE, encoding="utf-8") as f:
        run = json.load(f)
    full = header(run) + "\n\n" + full_table(run)
    changed = []
    md = os.path.join(ROOT, "benches", "results", "scoreboard.md")
    md_text = "# fanout scoreboard\n\n" + full + "\n"
    old = open(md, encoding="utf-8").read() if os.path.exists(md) else None
    if old != md_text:
        changed.append(md)
        if not CHECK:
            with open(md, "w", encoding="utf-8") as f:
                f.write(md_text)
    if splice(os.path.join(ROOT, "PERFORMANCE.md"), "scoreboard", full):
        changed.append("PERFORMANCE.md")
    if splice(os.path.join(ROOT, "README.md"), "scoreboard-summary", summary_table(run)):
        changed.append("README.md")
    if CHECK:
        if changed:
            print("out of date with " + SOURCE + ": " + ", ".join(changed))
            sys.exit(1)
        print("docs match " + SOURCE)
    else:
        print("updated: " + (", ".join(changed) if changed else "nothing (already current)"))


main()

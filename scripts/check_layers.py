#!/usr/bin/env python3
"""Checks that src/'s `use` lines agree with the layer map in src/lib.rs.

The crate docs (src/lib.rs) open with a table of layers, bottom to top:

    //! | layer | modules | ...

This script reads that table, then every `crate::…`, `super::…` and `self::…` path in
src/ (in `use` trees and inline), resolves each to the file that defines it, and fails
when:

- a file imports a name through the crate root's re-exports (`use crate::ClientId`
  instead of `use crate::vocab::client::ClientId`): such an import hides which layer
  the name comes from;
- an import points up a layer (a file of a lower layer naming a module of a higher one);
- two files import each other (directly, or through a longer cycle of files);
- a top-level module of src/ is missing from the map, or the map names one that is not
  there.

Run: `python3 scripts/check_layers.py` (from anywhere). `.ci/run` runs it.

Limits, on purpose: paths are found by a tokenizer, not a Rust parser; comments and
string literals are skipped; `super::` on an indented `use` line is taken to be inside
an inline `mod tests { … }` block and so to mean the file's own module. Test-only
modules (`#[cfg(test)]` files named tests.rs) count like any other file.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")


def fail(messages):
    for message in messages:
        print(f"check_layers: {message}", file=sys.stderr)
    sys.exit(1)


def module_path_of(file):
    """`src/engine/writer.rs` -> ['engine', 'writer']; mod.rs and lib.rs are their folder."""
    rel = os.path.relpath(file, SRC)
    parts = rel[: -len(".rs")].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def file_of(module):
    """The file defining module path `module`, or None."""
    if not module:
        return os.path.join(SRC, "lib.rs")
    base = os.path.join(SRC, *module)
    for candidate in (base + ".rs", os.path.join(base, "mod.rs")):
        if os.path.isfile(candidate):
            return candidate
    return None


def strip_comments_and_strings(text):
    """Blanks out comments and string/char literals, keeping line structure."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree):
    """'a::{b, c::{d, e}}' -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    results = []

    def walk(prefix, s):
        # s is a comma-separated list at this level
        depth, start, items = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(s[start:k])
                start = k + 1
        items.append(s[start:])
        for item in items:
            if not item:
                continue
            if "{" in item:
                head, rest = item.split("{", 1)
                walk(prefix + head, rest[: rest.rfind("}")])
            else:
                item = re.sub(r"\bas\b.*$", "", item)
                results.append(prefix + item)

    walk("", tree)
    return results


def paths_in(text):
    """Every (path, line, indented_use) naming crate::, super:: or self:: items."""
    found = []
    for m in re.finditer(r"(?m)^([ \t]*)(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        line = text.count("\n", 0, m.start()) + 1
        indented = len(m.group(1)) > 0
        for path in expand_use_tree(m.group(2)):
            if path.startswith(("crate::", "super::", "self::")):
                found.append((path, line, indented))
    # Inline paths outside `use` lines.
    no_use = re.sub(r"(?m)^[ \t]*(?:pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    for m in re.finditer(r"\b(crate|super)(::[A-Za-z_][A-Za-z0-9_]*)+", no_use):
        line = text.count("\n", 0, m.start()) + 1
        found.append((m.group(0), line, False))
    return found


def resolve(path, here, indented):
    """The module path a path names (its longest prefix that is a module file) and the
    first segment after it (the item), or None for a crate-root item."""
    segments = path.split("::")
    if segments[0] == "crate":
        base, rest = [], segments[1:]
    elif segments[0] == "self":
        base, rest = list(here), segments[1:]
    else:  # super
        base = list(here) if indented else list(here[:-1])
        rest = segments[1:]
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    module = list(base)
    for segment in rest:
        if segment in ("*", "self") or file_of(module + [segment]) is None:
            break
        module.append(segment)
    return module


def layer_map():
    """The table in lib.rs's docs: (layer index, name, [top-level modules])."""
    lib = open(os.path.join(SRC, "lib.rs"), encoding="utf-8").read()
    rows = re.findall(r"(?m)^//! \| (\d+) \| ([^|]+)\| ([^|]+)\|", lib)
    if not rows:
        fail(["no layer table in src/lib.rs (rows like `//! | 1 | ground | `sync` | …`)"])
    layers = {}
    for index, name, modules in rows:
        for module in re.findall(r"`([a-z_]+)`", modules):
            layers[module] = (int(index), name.strip())
    return layers


def main():
    layers = layer_map()
    problems = []
    files = []
    for folder, _, names in os.walk(SRC):
        files += [os.path.join(folder, n) for n in names if n.endswith(".rs")]
    top_level = sorted(
        {module_path_of(f)[0] for f in files if module_path_of(f)}
    )
    for module in top_level:
        if module not in layers:
            problems.append(f"src/{module} is not in lib.rs's layer table")
    for module in layers:
        if module not in top_level:
            problems.append(f"lib.rs's layer table names `{module}`, which is not in src/")

    edges = {}
    for file in sorted(files):
        here = module_path_of(file)
        text = strip_comments_and_strings(open(file, encoding="utf-8").read())
        rel = os.path.relpath(file, ROOT)
        for path, line, indented in paths_in(text):
            target = resolve(path, here, indented)
            if not target:
                if path.startswith("crate::") and here:
                    problems.append(
                        f"{rel}:{line}: `{path}` goes through the crate root's re-exports; import it from the module that defines it"
                    )
                continue
            target_file = file_of(target)
            if target_file == file:
                continue
            # A module file naming its own submodules (it declares them, and re-exports
            # what they define) is structure, not an import between peers.
            if target[: len(here)] == here and len(target) > len(here):
                continue
            edges.setdefault(file, {}).setdefault(target_file, (line, path))
            if here and target and here[0] != target[0]:
                mine, theirs = layers.get(here[0]), layers.get(target[0])
                if mine and theirs and theirs[0] > mine[0]:
                    problems.append(
                        f"{rel}:{line}: `{path}` points up: {here[0]} ({mine[1]}, layer {mine[0]}) imports {target[0]} ({theirs[1]}, layer {theirs[0]})"
                    )

    # Cycles between files: a parent module file naming its children (mod.rs re-exports)
    # and a child naming its parent would be a cycle of two files; report every cycle.
    index, low, on_stack, stack, counter = {}, {}, set(), [], [0]
    sys.setrecursionlimit(10000)

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                names = sorted(os.path.relpath(f, ROOT) for f in component)
                detail = []
                for a in component:
                    for b, (line, path) in edges.get(a, {}).items():
                        if b in component:
                            detail.append(f"{os.path.relpath(a, ROOT)}:{line} -> {path}")
                problems.append("import cycle between files " + ", ".join(names) + " (" + "; ".join(sorted(detail)) + ")")

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)

    if problems:
        fail(problems)
    count = sum(len(v) for v in edges.values())
    print(f"check_layers: {len(files)} files, {count} file-to-file imports, {len(top_level)} top-level modules in {len(set(layers.values()))} layers: ok")


if __name__ == "__main__":
    main()

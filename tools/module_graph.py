#!/usr/bin/env python3
"""Prints the package's module graph (each target -> the targets it depends on), read from
Package.swift, in dependency order. README's "Module graph" section is this script's output.

    python3 tools/module_graph.py           # the graph
    python3 tools/module_graph.py --check   # also: every target imports exactly what it declares, and
                                            # README shows this output (exit 1 otherwise)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def targets():
    """[(kind, name, [dependencies], path or None)] in Package.swift's order."""
    text = open(os.path.join(ROOT, "Package.swift")).read()
    text = re.sub(r"//[^\n]*", "", text)
    # The package's `targets: [` (a product's `targets: ["..."]` lists names, not declarations).
    start = re.search(r"\btargets:\s*\[(?=\s*\.)", text).end()
    # The top-level items of `targets: [...]`: split at depth 0 (strings hold no brackets here).
    items, depth, begin = [], 0, start
    for j in range(start, len(text)):
        c = text[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            if depth == 0:
                items.append(text[begin:j])
                break
            depth -= 1
        elif c == "," and depth == 0:
            items.append(text[begin:j])
            begin = j + 1
    found = []
    for item in items:
        m = re.match(r"\s*\.(target|executableTarget|testTarget|systemLibrary)\(\s*name:\s*\"(\w+)\"", item)
        if not m:
            continue
        deps = []
        d = re.search(r"dependencies:\s*\[", item)
        if d:
            depth, j = 1, d.end()
            while depth and j < len(item):
                depth += {"[": 1, "]": -1}.get(item[j], 0)
                j += 1
            deps = re.findall(r"\"(\w+)\"", item[d.end():j - 1])
        path = re.search(r"\bpath:\s*\"([^\"]+)\"", item)
        found.append((m.group(1), m.group(2), deps, path.group(1) if path else None))
    return found


def ordered(graph):
    """Targets with their dependencies first (Package.swift's order among equals)."""
    done, out = set(), []
    def visit(n):
        if n in done:
            return
        done.add(n)
        for d in graph.get(n, []):
            visit(d)
        out.append(n)
    for n in graph:
        visit(n)
    return out


def imports(kind, name, path=None):
    folder = os.path.join(ROOT, path) if path else os.path.join(ROOT, "Tests" if kind == "testTarget" else "Sources", name)
    found = set()
    for dirpath, _, files in os.walk(folder):
        for f in files:
            if f.endswith(".swift"):
                for line in open(os.path.join(dirpath, f)):
                    m = re.match(r"\s*(?:@testable\s+)?import\s+(\w+)", line)
                    if m:
                        found.add(m.group(1))
    return found


def main():
    all_targets = targets()
    modules = {n: deps for k, n, deps, _ in all_targets if k != "testTarget"}
    width = max(len(n) for n in modules)
    graph = "".join(f"{n:<{width}} -> {', '.join(modules[n]) if modules[n] else '(none)'}\n" for n in ordered(modules))
    print(graph, end="")
    if "--check" in sys.argv:
        names = {n for _, n, _, _ in all_targets}
        # Targets kept under Tests/ (shared test support) serve test targets only.
        test_only = {n for k, n, _, path in all_targets if k == "target" and path and path.startswith("Tests/")}
        problems = []
        for kind, n, deps, path in all_targets:
            if kind == "systemLibrary":
                continue
            if kind != "testTarget":
                for d in sorted(set(deps) & test_only):
                    problems.append(f"{n} is not a test target but depends on {d}, which serves tests only")
            used = imports(kind, n, path) & names
            for u in sorted(used - set(deps)):
                problems.append(f"{n} imports {u} but does not declare it")
            for d in deps:
                if d not in used:
                    problems.append(f"{n} declares {d} but does not import it")
        if "```\n" + graph + "```" not in open(os.path.join(ROOT, "README.md")).read():
            problems.append("README.md's module graph differs from this output: paste it into README's block")
        for p in problems:
            print("module_graph: " + p, file=sys.stderr)
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

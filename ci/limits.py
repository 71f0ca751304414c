#!/usr/bin/env python3
"""Size limits of the production code (issue 15): no source file over 1,200
lines and no function over 120 lines, tests excluded.

Tests are a file's `#[cfg(test)]` items (to the end of the item), files named
tests.rs or *_tests.rs, and anything under tests/ or benches/. Prints every
breach and exits 1 if there is one; `--report` lists the largest anyway.
"""
import os
import re
import sys

FILE_LIMIT = 1200
FN_LIMIT = 120
ROOTS = ["driver/src", "fake-ceph/src", "fake-manila/src", "harness/src"]

FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def strip(line, state):
    """The line without comments, string and char literals; state carries an
    open block comment or string across lines."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"] = False
            i = j + 2
            continue
        if state["raw"] is not None:
            end = '"' + "#" * state["raw"]
            j = line.find(end, i)
            if j < 0:
                return "".join(out)
            state["raw"] = None
            i = j + len(end)
            continue
        if state["str"]:
            while i < n:
                if line[i] == "\\":
                    i += 2
                    continue
                if line[i] == '"':
                    state["str"] = False
                    i += 1
                    break
                i += 1
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        m = re.match(r'b?r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state["raw"] = len(m.group(1))
            i += m.end()
            continue
        if c == '"':
            state["str"] = True
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", line[i:])
            if m:
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def analyse(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    state = {"block": False, "raw": None, "str": False}
    code = [strip(l, state) for l in lines]
    test = [False] * len(lines)
    # Mark #[cfg(test)] items: from the attribute to the close of the item.
    i = 0
    while i < len(lines):
        if re.match(r"\s*#\[cfg\(test\)\]", lines[i]):
            depth = 0
            opened = False
            j = i
            while j < len(lines):
                test[j] = True
                depth += code[j].count("{") - code[j].count("}")
                if "{" in code[j]:
                    opened = True
                if (opened and depth <= 0) or (not opened and code[j].rstrip().endswith(";")):
                    break
                j += 1
            i = j + 1
            continue
        i += 1
    prod_lines = sum(1 for k in range(len(lines)) if not test[k])
    fns = []
    for k, l in enumerate(code):
        if test[k]:
            continue
        m = FN_RE.match(l)
        if not m:
            continue
        depth = 0
        opened = False
        j = k
        while j < len(code):
            depth += code[j].count("{") - code[j].count("}")
            if "{" in code[j]:
                opened = True
            if opened and depth <= 0:
                break
            if not opened and code[j].rstrip().endswith(";"):
                break
            j += 1
        if opened:
            fns.append((j - k + 1, m.group(6), k + 1))
    return prod_lines, fns


def main():
    report = "--report" in sys.argv
    breaches = []
    files = []
    functions = []
    for root in ROOTS:
        for dirpath, _, names in os.walk(root):
            for name in names:
                if not name.endswith(".rs") or name == "tests.rs" or name.endswith("_tests.rs"):
                    continue
                if "/tests/" in dirpath + "/":
                    continue
                path = os.path.join(dirpath, name)
                n, fns = analyse(path)
                files.append((n, path))
                for length, fname, line in fns:
                    functions.append((length, f"{path}:{line} {fname}"))
    for n, path in files:
        if n > FILE_LIMIT:
            breaches.append(f"{path}: {n} lines outside tests (limit {FILE_LIMIT})")
    for length, where in functions:
        if length > FN_LIMIT:
            breaches.append(f"{where}: {length} lines (limit {FN_LIMIT})")
    if report:
        print("largest files (lines outside tests):")
        for n, path in sorted(files, reverse=True)[:10]:
            print(f"  {n:5} {path}")
        print("longest functions:")
        for length, where in sorted(functions, reverse=True)[:10]:
            print(f"  {length:5} {where}")
    for b in breaches:
        print("over the limit:", b)
    print(f"{len(files)} files, {len(functions)} functions; {len(breaches)} over the limits")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())

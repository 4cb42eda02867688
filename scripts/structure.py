#!/usr/bin/env python3
"""The shape the code keeps (make structure, in CI): no function
outside tests over 80 lines, no file over 450 lines before its tests, no
import cycle between the top-level modules of a crate, no reference to a
file outside the repository, and no link in the docs to a file or heading
that is gone. Prints what breaks a rule; exits 1 if any.
"""
import os
import re
import subprocess
import sys

MAX_FN, MAX_FILE = 80, 450
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["actors", "loadgen", "model", "observability", "services/common",
          "services/order-service", "services/payment-service"]
FN = re.compile(r"\s*(pub(\([^)]*\))? )?(const )?(async )?(unsafe )?fn (\w+)")


def code(line):
    """The line without strings, chars and comments, for brace counting."""
    line = re.sub(r'"([^"\\]|\\.)*"', '""', line)
    line = re.sub(r"'([^'\\]|\\.)'", "''", line)
    return line.split("//")[0]


def before_tests(lines):
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "#[cfg(test)]" and re.match(r"\s*mod \w+", lines[i + 1]):
            return lines[:i]
    return lines


def long_functions(lines):
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m or lines[i].strip().startswith("//"):
            i += 1
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            c = code(lines[j])
            if not opened and ";" in c and "{" not in c:
                break  # a declaration without a body
            depth += c.count("{") - c.count("}")
            opened |= "{" in c
            if opened and depth <= 0:
                break
            j += 1
        if opened and j - i + 1 > MAX_FN:
            yield m.group(6), i + 1, j - i + 1
        i = j + 1 if opened else i + 1


def rust_files(crate):
    for kind in ("src", "benches"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, crate, kind)):
            for name in sorted(files):
                if name.endswith(".rs"):
                    yield os.path.join(dirpath, name)


def sizes():
    for crate in CRATES:
        for path in rust_files(crate):
            lines = before_tests(open(path).read().split("\n"))
            rel = os.path.relpath(path, ROOT)
            if len(lines) > MAX_FILE:
                yield f"{rel}: {len(lines)} lines before its tests (at most {MAX_FILE})"
            for name, line, length in long_functions(lines):
                yield f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_FN})"


def cycles():
    for crate in CRATES:
        src = os.path.join(ROOT, crate, "src")
        uses = {}
        for path in rust_files(crate):
            if not path.startswith(src):
                continue
            top = os.path.relpath(path, src).split(os.sep)[0].removesuffix(".rs")
            if top in ("lib", "main"):
                continue
            text = "\n".join(before_tests(open(path).read().split("\n")))
            found = set(re.findall(r"crate::([a-z_]+)", text)) - {top}
            uses.setdefault(top, set()).update(found)
        state, stack = {}, []

        def visit(module):
            state[module] = "open"
            stack.append(module)
            for used in sorted(uses.get(module, ())):
                if used not in uses:
                    continue
                if state.get(used) == "open":
                    loop = stack[stack.index(used):] + [used]
                    yield f"{crate}: import cycle {' -> '.join(loop)}"
                elif used not in state:
                    yield from visit(used)
            stack.pop()
            state[module] = "done"

        for module in sorted(uses):
            if module not in state:
                yield from visit(module)


def outside_references():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    pattern = re.compile(r"\.\./shared|CONTRACT\.md")
    for rel in tracked:
        if rel == "scripts/structure.py":
            continue
        try:
            text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for n, line in enumerate(text.split("\n"), 1):
            if pattern.search(line):
                yield f"{rel}:{n}: refers outside the repository: {line.strip()}"


def slug(heading):
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def anchors(text):
    found, fenced = set(), False
    for line in text.split("\n"):
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def broken_links():
    """Relative links of the README and docs/ whose file or heading is gone."""
    docs = ["README.md"] + sorted(
        os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs"))
        if name.endswith(".md"))
    for doc in docs:
        text = open(os.path.join(ROOT, doc)).read()
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            if not os.path.exists(os.path.join(ROOT, target)):
                yield f"{doc}: link to a missing file: {link}"
            elif anchor and target.endswith(".md") and \
                    anchor not in anchors(open(os.path.join(ROOT, target)).read()):
                yield f"{doc}: link to a missing heading: {link}"


def main():
    broken = [*sizes(), *cycles(), *outside_references(), *broken_links()]
    for problem in broken:
        print(problem)
    if broken:
        sys.exit(1)
    print("structure: every function ≤ 80 lines, every file ≤ 450 before its tests, "
          "no import cycle, no reference outside the repository, no broken link in the docs")


if __name__ == "__main__":
    main()

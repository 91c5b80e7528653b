#!/usr/bin/env bash
# Checks that every test tests/CLAIMS.md names exists, so a renamed or
# deleted test cannot leave a claim pointing at nothing. Fast (reads files,
# builds nothing); run by .ci/run before the tests.
#
#   scripts/check-claims.sh
#
# In the test column of every table row (text in parentheses is commentary
# and not checked), each `code` span must be one of:
#   file::name       a product test: `fn name` in tests/product/file.rs
#                    (`file::*`: the file exists; `name…`: a test starting so)
#   a::b::tests::c   a unit test: `fn c` in src/a/b.rs, src/a/b/*.rs or src/a.rs
#                    (`tests::*`: that module has tests)
#   fuzz `name`      a fuzz target: fuzz/fuzz_targets/name.rs, built by fuzz/Cargo.toml
#   name, name_*     a test function defined somewhere in src/ or tests/
#   path/to/file     a file of the repository (scripts, generators)
# Anything else in the column fails the check, naming the row.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 - "$ROOT" <<'EOF'
import glob
import os
import re
import sys

root = sys.argv[1]
os.chdir(root)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def fns(paths):
    names = set()
    for p in paths:
        names.update(re.findall(r"\bfn\s+([a-z0-9_]+)\s*[<(]", read(p)))
    return names


all_fns = fns(glob.glob("src/**/*.rs", recursive=True) + glob.glob("tests/**/*.rs", recursive=True))
fuzz_bins = set(re.findall(r'^name\s*=\s*"([a-z0-9_]+)"', read("fuzz/Cargo.toml"), re.M))


def strip_parens(s):
    out, depth = [], 0
    for c in s:
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


def matches(name, names):
    if name.endswith("…"):
        return any(n.startswith(name[:-1]) for n in names)
    if name.endswith("*"):
        return any(n.startswith(name[:-1]) for n in names)
    return name in names


def product(file, name):
    path = f"tests/product/{file}.rs"
    if not os.path.exists(path):
        return f"no {path}"
    if name == "*":
        return None if re.search(r"#\[(tokio::)?test", read(path)) else f"{path} has no test"
    return None if matches(name, fns([path])) else f"no test {name} in {path}"


def unit(parts):
    i = parts.index("tests")
    mod, name = parts[:i], parts[i + 1]
    base = os.path.join("src", *mod)
    files = [base + ".rs"] + glob.glob(base + "/*.rs") + glob.glob(base + "/**/*.rs", recursive=True)
    files = [f for f in files if os.path.exists(f)]
    if not files:
        return f"no module src/{'/'.join(mod)}"
    if name == "*":
        return None if any("mod tests" in read(f) or f.endswith("/tests.rs") for f in files) else \
            f"src/{'/'.join(mod)} has no tests"
    return None if matches(name, fns(files)) else f"no unit test {name} in src/{'/'.join(mod)}"


def check(span, before):
    if before.rstrip().endswith("fuzz"):
        if span not in fuzz_bins or not os.path.exists(f"fuzz/fuzz_targets/{span}.rs"):
            return f"fuzz target {span} not in fuzz/Cargo.toml or fuzz/fuzz_targets/"
        return None
    if "::" in span:
        parts = span.split("::")
        if "tests" in parts[:-1]:
            return unit(parts)
        if len(parts) == 2:
            return product(*parts)
        return f"{span}: neither file::test nor a::b::tests::name"
    if "/" in span or span.endswith((".sh", ".py")):
        return None if os.path.exists(span) else f"no file {span}"
    if re.fullmatch(r"[a-z0-9_]+[*…]?", span):
        return None if matches(span, all_fns) else f"no test function {span}"
    return f"{span}: not a test name"


failures, checked = [], 0
for n, line in enumerate(read("tests/CLAIMS.md").splitlines(), 1):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if not line.startswith("|") or len(cells) < 2 or set(cells[1]) <= set("- ") or cells[1] == "test":
        continue
    column = strip_parens(cells[1])
    if column.startswith("read from "):
        continue  # a claim about the reference's own code, not ours
    for m in re.finditer(r"`([^`]+)`", column):
        checked += 1
        problem = check(m.group(1), column[: m.start()])
        if problem:
            failures.append(f"tests/CLAIMS.md:{n}: {problem}")
if failures:
    print("\n".join(failures), file=sys.stderr)
    print(f"check-claims: {len(failures)} of {checked} named tests missing", file=sys.stderr)
    sys.exit(1)
print(f"check-claims: all {checked} tests named in tests/CLAIMS.md exist")
EOF

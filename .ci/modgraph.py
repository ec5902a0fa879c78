#!/usr/bin/env python3
"""Module dependency check for a Rust source tree (CI: `python3 .ci/modgraph.py src`).

Graphs:
  * the top-level modules of SRC (src/x.rs, src/x/mod.rs: node `x`);
  * within each folder, its sibling modules (src/bench/a.rs -> node `a` of
    `src/bench/`). A module using items of its parent (`super::Item` from
    src/bench/a.rs) is not an edge; nor is a parent using its children.

An edge a -> b is a path `crate::...`, `super::...` or `self::...` in a's
non-test code that resolves into b, in a `use` declaration (groups such as
`use crate::{a, b::c}` included) or anywhere else in the code. Not counted:
comments (doc comments included), string literals, files named `tests.rs`,
items under `#[cfg(test)]` (or `#[cfg(all(test, ...))]`), and files whose
module is declared under `#[cfg(test)]`.

Exit status 1, printing each cycle and the code behind its edges, when a
graph has a cycle. Files over MAX_CODE_LINES lines of code (non-blank lines
that are not only comments, outside test code) are reported as warnings and
do not change the exit status.

Options: -v prints every edge; --max-lines N changes the warning threshold.
"""

import argparse
import os
import sys
from collections import defaultdict

MAX_CODE_LINES = 400

# ---------------------------------------------------------------- lexing


class Tok:
    __slots__ = ("kind", "text", "line", "end_line")

    def __init__(self, kind, text, line, end_line=None):
        self.kind = kind  # "ident", "punct", "lit", "lifetime"
        self.text = text
        self.line = line
        self.end_line = line if end_line is None else end_line

    def __repr__(self):
        return f"{self.kind}:{self.text}@{self.line}"


STRING_PREFIXES = {"b", "r", "br", "rb", "c", "cr"}


def _is_ident_start(ch):
    return ch.isalpha() or ch == "_"


def _is_ident_char(ch):
    return ch.isalnum() or ch == "_"


def lex(text):
    """Tokens of Rust source `text`; comments dropped, literals kept as one token."""
    toks = []
    i, n, line = 0, len(text), 1

    def scan_quoted(j, quote):
        """Index just past the closing `quote` of a literal whose body starts at j."""
        while j < n:
            ch = text[j]
            if ch == "\\":
                j += 2
                continue
            if ch == quote:
                return j + 1
            j += 1
        return n

    def scan_raw(j):
        """j at the first `#` or `"` after `r`; index just past the raw string."""
        hashes = 0
        while j < n and text[j] == "#":
            hashes += 1
            j += 1
        if j >= n or text[j] != '"':
            return None
        close = '"' + "#" * hashes
        end = text.find(close, j + 1)
        return n if end < 0 else end + len(close)

    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            line += text.count("\n", i, j)
            i = j
        elif ch == '"':
            j = scan_quoted(i + 1, '"')
            toks.append(Tok("lit", "\"\"", line, line + text.count("\n", i, j)))
            line += text.count("\n", i, j)
            i = j
        elif ch == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime / label ('a).
            if i + 1 < n and text[i + 1] == "\\":
                j = scan_quoted(i + 1, "'")
                toks.append(Tok("lit", "''", line))
                i = j
            elif i + 2 < n and text[i + 2] == "'":
                toks.append(Tok("lit", "''", line))
                i += 3
            else:
                j = i + 1
                while j < n and _is_ident_char(text[j]):
                    j += 1
                toks.append(Tok("lifetime", text[i:j], line))
                i = j
        elif _is_ident_start(ch):
            j = i + 1
            while j < n and _is_ident_char(text[j]):
                j += 1
            word = text[i:j]
            nxt = text[j] if j < n else ""
            if word in STRING_PREFIXES and nxt in ('"', "#"):
                if "r" in word:
                    end = scan_raw(j)
                elif nxt == '"':
                    end = scan_quoted(j + 1, '"')
                else:
                    end = None
                if end is not None:
                    toks.append(Tok("lit", "\"\"", line, line + text.count("\n", i, end)))
                    line += text.count("\n", i, end)
                    i = end
                    continue
            if word == "r" and nxt == "#" and j + 1 < n and _is_ident_start(text[j + 1]):
                # A raw identifier: r#type.
                k = j + 1
                while k < n and _is_ident_char(text[k]):
                    k += 1
                toks.append(Tok("ident", text[j + 1 : k], line))
                i = k
                continue
            if word == "b" and nxt == "'":
                end = scan_quoted(j + 1, "'")
                toks.append(Tok("lit", "''", line))
                i = end
                continue
            toks.append(Tok("ident", word, line))
            i = j
        elif ch.isdigit():
            j = i + 1
            while j < n and _is_ident_char(text[j]):
                j += 1
            toks.append(Tok("lit", text[i:j], line))
            i = j
        elif text.startswith("::", i):
            toks.append(Tok("punct", "::", line))
            i += 2
        else:
            toks.append(Tok("punct", ch, line))
            i += 1
    return toks


# ------------------------------------------------- test code and attributes


def _matching(toks, i):
    """Index of the bracket closing the one at toks[i] (or len(toks))."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[toks[i].text]]
    j = i + 1
    while j < len(toks) and stack:
        t = toks[j]
        if t.kind == "punct":
            if t.text in pairs:
                stack.append(pairs[t.text])
            elif t.text == stack[-1]:
                stack.pop()
        j += 1
    return j - 1 if not stack else len(toks)


def _parse_cfg(toks, i, end):
    """A cfg predicate as a tree: ("test",), ("all", [...]), ... ; returns (tree, next)."""
    t = toks[i] if i < end else None
    if t is None or t.kind != "ident":
        return ("?",), i + 1
    name = t.text
    if i + 1 < end and toks[i + 1].text == "(" and name in ("all", "any", "not"):
        close = _matching(toks, i + 1)
        items, j = [], i + 2
        while j < close:
            item, j = _parse_cfg(toks, j, close)
            items.append(item)
            if j < close and toks[j].text == ",":
                j += 1
        return (name, items), close + 1
    j = i + 1
    if j < end and toks[j].text == "=":
        j += 2  # name = "value"
    return (name,), j


def _test_only(pred):
    """True when code under the predicate is compiled only for tests."""
    if pred == ("test",):
        return True
    if pred[0] == "all" and len(pred) == 2:
        return any(_test_only(p) for p in pred[1])
    return False


def _attribute(toks, i):
    """If toks[i] starts `#[...]` or `#![...]`: (inner, is_test_only, index past it)."""
    if toks[i].text != "#" or i + 1 >= len(toks):
        return None
    j = i + 1
    inner = toks[j].text == "!"
    if inner:
        j += 1
    if j >= len(toks) or toks[j].text != "[":
        return None
    close = _matching(toks, j)
    test_only = False
    if j + 2 < close and toks[j + 1].text == "cfg" and toks[j + 2].text == "(":
        pred, _ = _parse_cfg(toks, j + 3, _matching(toks, j + 2))
        test_only = _test_only(pred)
    return inner, test_only, close + 1


def _item_end(toks, i):
    """Index past the item starting at toks[i] (its attributes already skipped):
    after its `;`, after its closing `}`, or after its `,` (a field, variant or
    match arm); generic parameters' commas do not count."""
    depth, angle, j = 0, 0, i
    while j < len(toks):
        t = toks[j]
        if t.kind == "punct":
            if t.text in "([{":
                depth += 1
            elif t.text in ")]}":
                if depth == 0:
                    return j  # the end of the enclosing block: not ours
                depth -= 1
                if depth == 0 and t.text == "}":
                    return j + 1
            elif depth == 0 and t.text == "<":
                angle += 1
            elif depth == 0 and t.text == ">" and angle and toks[j - 1].text not in "-=":
                angle -= 1
            elif depth == 0 and (t.text == ";" or (t.text == "," and not angle)):
                return j + 1
        j += 1
    return j


def strip_test_code(toks):
    """(tokens outside test code, names of `#[cfg(test)] mod name;` files, whole file is test)."""
    kept, test_mods = [], []
    i = 0
    while i < len(toks):
        attr = _attribute(toks, i)
        if attr is None:
            kept.append(toks[i])
            i += 1
            continue
        inner, test_only, j = attr
        if not test_only:
            kept.extend(toks[i:j])
            i = j
            continue
        if inner:
            return [], [], True
        # Skip further attributes, then the item.
        while j < len(toks):
            more = _attribute(toks, j)
            if more is None:
                break
            j = more[2]
        end = _item_end(toks, j)
        words = [t.text for t in toks[j:end]]
        while words and words[0] in ("pub", "(", "crate", "super", "self", "in", ")"):
            words.pop(0)
        if len(words) == 3 and words[0] == "mod" and words[2] == ";":
            test_mods.append(words[1])
        i = end
    return kept, test_mods, False


# --------------------------------------------------------------- paths


def _use_tree(toks, i, prefix, out):
    """Parses a use tree at toks[i]; appends (path, line) to out; returns the next index."""
    if i < len(toks) and toks[i].text == "::":
        i += 1
    if i >= len(toks):
        return i
    t = toks[i]
    if t.text == "{":
        close = _matching(toks, i)
        j = i + 1
        while j < close:
            k = _use_tree(toks, j, prefix, out)
            j = k if k > j else j + 1
            if j < close and toks[j].text == ",":
                j += 1
        return close + 1
    if t.text == "*":
        out.append((prefix, t.line))
        return i + 1
    if t.kind != "ident":
        return i + 1
    i += 1
    if i < len(toks) and toks[i].text == "::":
        return _use_tree(toks, i + 1, prefix + [t.text], out)
    out.append((prefix if t.text == "self" and prefix else prefix + [t.text], t.line))
    if i + 1 < len(toks) and toks[i].text == "as":
        i += 2
    return i


def crate_paths(toks):
    """(segments, line) of every `crate::`/`super::`/`self::` path and use-tree path."""
    paths = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "ident" and t.text == "use" and (i == 0 or toks[i - 1].text != "::"):
            end = _use_tree(toks, i + 1, [], paths)
            i = max(end, i + 1)
            continue
        if (
            t.kind == "ident"
            and t.text in ("crate", "super", "self")
            and i + 1 < len(toks)
            and toks[i + 1].text == "::"
            and (i == 0 or toks[i - 1].text != "::")
            and not (i >= 1 and toks[i - 1].text == "in")
        ):
            segs, j = [t.text], i + 1
            while j + 1 < len(toks) and toks[j].text == "::" and toks[j + 1].kind == "ident":
                segs.append(toks[j + 1].text)
                j += 2
            paths.append((segs, t.line))
            i = j
            continue
        i += 1
    return paths


def resolve(segs, module):
    """Absolute module path (a tuple) of `segs` used in `module`, or None if not crate-relative."""
    if not segs:
        return None
    head, rest = segs[0], list(segs)
    if head == "crate":
        base, rest = [], rest[1:]
    elif head == "self":
        base, rest = list(module), rest[1:]
    elif head == "super":
        base = list(module)
        while rest and rest[0] == "super":
            if not base:
                return None
            base.pop()
            rest = rest[1:]
    else:
        return None
    return tuple(base + rest)


# ------------------------------------------------------------ the graph


def module_of(rel_parts):
    """Module path of a file, from its path relative to the source root."""
    parts = list(rel_parts)
    last = parts.pop()
    if last == "mod.rs":
        return tuple(parts)
    if not parts and last in ("lib.rs", "main.rs"):
        return ()
    return tuple(parts + [last[: -len(".rs")]])


def code_lines(toks):
    lines = set()
    for t in toks:
        lines.update(range(t.line, t.end_line + 1))
    return len(lines)


def analyse(root):
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files.append((path, os.path.relpath(path, root).split(os.sep)))

    parsed = {}
    test_files = set()
    for path, rel in files:
        module = module_of(rel)
        with open(path, encoding="utf-8") as f:
            toks = lex(f.read())
        kept, test_mods, whole = strip_test_code(toks)
        parsed[path] = (module, kept, whole)
        # Where this module's child files live.
        child_dir = os.path.dirname(path)
        if rel[-1] not in ("mod.rs", "lib.rs", "main.rs"):
            child_dir = os.path.join(child_dir, rel[-1][: -len(".rs")])
        for name in test_mods:
            test_files.add(os.path.join(child_dir, name + ".rs"))
            test_files.add(os.path.join(child_dir, name, "mod.rs"))

    def is_test(path, rel):
        return parsed[path][2] or rel[-1] == "tests.rs" or path in test_files

    modules = set()
    for path, rel in files:
        module = parsed[path][0]
        if not is_test(path, rel):
            for k in range(1, len(module) + 1):
                modules.add(module[:k])

    edges = defaultdict(dict)  # folder -> {(a, b): "file:line path"}
    sizes = []
    for path, rel in files:
        module, kept, _ = parsed[path]
        if is_test(path, rel) or not module:
            continue
        sizes.append((code_lines(kept), path))
        for segs, line in crate_paths(kept):
            target = resolve(segs, module)
            if target is None:
                continue
            k = 0
            while k < len(module) and k < len(target) and module[k] == target[k]:
                k += 1
            if k >= len(module) or k >= len(target):
                continue  # the module itself, a parent, or a child
            a, b = module[k], target[k]
            if target[: k + 1] not in modules:
                continue  # an item of the common parent, not a sibling module
            where = f"{path}:{line} {'::'.join(segs)}"
            edges[module[:k]].setdefault((a, b), where)
    return modules, edges, sizes


def strongly_connected(nodes, succ):
    """Tarjan's algorithm, iterative; components in no particular order."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(succ.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(succ.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                comps.append(sorted(comp))
    return comps


def shortest_cycle(start, succ, allowed):
    """A shortest cycle through `start` inside `allowed`, as a node list ending at start."""
    prev, frontier, seen = {}, [start], {start}
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(succ.get(node, ())):
                if child not in allowed:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start] + path[::-1][1:] + [start]
                if child not in seen:
                    seen.add(child)
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]


def folder_name(root, folder):
    return os.path.join(root, *folder) + os.sep


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", help="the source root, e.g. src")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every edge")
    parser.add_argument("--max-lines", type=int, default=MAX_CODE_LINES)
    args = parser.parse_args()
    if not os.path.isdir(args.src):
        print(f"modgraph: {args.src} is not a directory", file=sys.stderr)
        return 2

    modules, edges, sizes = analyse(args.src)

    for lines, path in sorted(sizes, reverse=True):
        if lines > args.max_lines:
            print(f"warning: {path}: {lines} lines of code (over {args.max_lines})")

    folders = sorted({m[:-1] for m in modules} | set(edges))
    cycles = 0
    for folder in folders:
        found = edges.get(folder, {})
        nodes = sorted(m[-1] for m in modules if m[:-1] == folder)
        succ = defaultdict(set)
        for a, b in found:
            succ[a].add(b)
        if args.verbose:
            print(f"{folder_name(args.src, folder)}")
            for node in nodes:
                print(f"  {node} -> {', '.join(sorted(succ.get(node, ()))) or '-'}")
        for comp in strongly_connected(nodes, succ):
            if len(comp) < 2:
                continue
            cycles += 1
            members = set(comp)
            cycle = shortest_cycle(comp[0], succ, members)
            print(f"cycle in {folder_name(args.src, folder)}: {' -> '.join(cycle)}")
            if len(comp) > len(cycle) - 1:
                print(f"  (all of {', '.join(comp)} depend on each other)")
            for (a, b), where in sorted(found.items()):
                if a in members and b in members:
                    print(f"  {a} -> {b}: {where}")
    if cycles:
        print(f"modgraph: {cycles} cycle(s) between modules; break them (move the shared item "
              "to the module that owns it, or into the parent)")
        return 1
    print(f"modgraph: no cycles between the modules of {args.src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

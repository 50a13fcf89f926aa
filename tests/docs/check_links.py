#!/usr/bin/env python3
"""Checks every Markdown link of a tree: a relative target must exist inside the tree (no `..` out
of it, no absolute path), `#anchor` must name a heading of its file, and no link may point outside
the repository (no URL scheme). Code blocks and code spans are not links.

  check_links.py ROOT                       every *.md under ROOT (build trees, node_modules and
                                            tests/docs/broken left out); exit 1 on any problem
  check_links.py --expect N ROOT            exit 0 only if exactly N problems are found (fixtures)
"""
import os
import re
import sys

SKIP_DIRS = {".git", "node_modules", "__pycache__"}
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
HTML = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]*)\"", re.I)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"`|\*|_(?=\W)|(?<=\W)_", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def prose_lines(text):
    """The lines outside fenced and indented code blocks, inline code spans removed."""
    fenced = False
    previous_blank = True
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*(```|~~~)", line):
            fenced = not fenced
            continue
        indented = previous_blank and re.match(r"^(    |\t)", line)
        if indented or fenced:
            continue  # an indented code block starts after a blank line
        previous_blank = not line.strip()
        yield number, re.sub(r"`[^`]*`", "", line)


def anchors(path):
    out = set()
    with open(path, encoding="utf-8") as f:
        for _, line in prose_lines(f.read()):
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                out.add(slug(m.group(1)))
    return out


def check(root, skip_fixtures=True):
    root = os.path.realpath(root)
    problems = []
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")
                         and not (skip_fixtures and os.path.join(rel_folder, d) == os.path.join("tests", "docs", "broken")))
        for name in sorted(files):
            if not name.endswith(".md"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for number, line in prose_lines(text):
                targets = [m.group(1) for m in LINK.finditer(line)] + [m.group(1) for m in HTML.finditer(line)]
                if m := REFERENCE.match(line):
                    targets.append(m.group(1))
                for target in targets:
                    where = f"{os.path.relpath(path, root)}:{number}: {target}"
                    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("//"):
                        problems.append(f"{where}: points outside the repository")
                        continue
                    file_part, _, anchor = target.partition("#")
                    if file_part.startswith("/"):
                        problems.append(f"{where}: absolute path (use a relative one)")
                        continue
                    resolved = os.path.realpath(os.path.join(folder, file_part)) if file_part else path
                    if os.path.commonpath([resolved, root]) != root:
                        problems.append(f"{where}: leaves the repository")
                    elif not os.path.exists(resolved):
                        problems.append(f"{where}: no such file")
                    elif anchor and resolved.endswith(".md") and slug(anchor) not in anchors(resolved):
                        problems.append(f"{where}: no heading #{anchor}")
    return problems


def main(argv):
    expect = None
    if argv[:1] == ["--expect"]:
        expect, argv = int(argv[1]), argv[2:]
    problems = check(argv[0], skip_fixtures=expect is None)
    for problem in problems:
        print(problem)
    print(f"markdown links: {len(problems)} problem(s)")
    if expect is not None:
        return 0 if len(problems) == expect else 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

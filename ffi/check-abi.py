#!/usr/bin/env python3
"""Checks the C ABI's compatibility rules (ffi/README.md, "ABI version").

Compares ffi/include/rados_mail.h with ffi/abi/rados_mail.h, the header of the last
release, declaration by declaration (functions, callback typedefs, struct layouts, opaque
handles, enum values, #define constants):

- same RM_ABI_VERSION_MAJOR: nothing of the release may be removed or changed; when
  something was added, RM_ABI_VERSION_MINOR must be above the release's;
- RM_ABI_VERSION_MAJOR one above the release's and RM_ABI_VERSION_MINOR 0: anything may
  change (what changed is listed);
- anything else fails.

Usage: ffi/check-abi.py              check (CI, ffi/check-header.sh runs it)
       ffi/check-abi.py --release    record the current header as the released one
       ffi/check-abi.py --self-test  check the checker on edited copies of the header
"""

import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CURRENT = HERE / "include" / "rados_mail.h"
RELEASED = HERE / "abi" / "rados_mail.h"
# Defines that state versions: they change by design.
VERSION_DEFINES = {
    "RADOS_MAIL_H",
    "RM_VERSION_MAJOR",
    "RM_VERSION_MINOR",
    "RM_VERSION_PATCH",
    "RM_VERSION_NUMBER",
    "RM_ABI_VERSION_MAJOR",
    "RM_ABI_VERSION_MINOR",
    "RM_ABI_VERSION",
}


def declarations(text):
    """Maps 'kind name' to a normalized declaration, and returns the ABI version."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    items, body, skip = {}, [], False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#ifdef __cplusplus"):
            skip = True
        elif skip:
            skip = not s.startswith("#endif")
        elif s.startswith("#define"):
            parts = s.split(None, 2)
            if parts[1] not in VERSION_DEFINES:
                items["define " + parts[1]] = parts[2] if len(parts) > 2 else ""
        elif not s.startswith("#"):
            body.append(s)
    version = tuple(
        int(re.search(rf"#define {n} (\d+)", text).group(1))
        for n in ("RM_ABI_VERSION_MAJOR", "RM_ABI_VERSION_MINOR")
    )
    rest = " ".join(body)
    # Enums and structs with bodies first (their members contain ';' and ',').
    for kind, name, inner in re.findall(r"typedef (enum|struct) (\w+) \{(.*?)\} \w+;", rest):
        if kind == "enum":
            for member in filter(None, (x.strip() for x in inner.split(","))):
                key, _, value = member.partition("=")
                items[f"enum {name}::{key.strip()}"] = value.strip()
        else:
            items["struct " + name] = "; ".join(" ".join(f.split()) for f in inner.split(";") if f.strip())
    rest = re.sub(r"typedef (enum|struct) (\w+) \{(.*?)\} \w+;", " ", rest)
    for stmt in rest.split(";"):
        stmt = " ".join(stmt.split())
        if not stmt:
            continue
        m = re.fullmatch(r"typedef struct (\w+) \w+", stmt)
        if m:
            items["opaque " + m.group(1)] = ""
            continue
        m = re.fullmatch(r"typedef .*\(\*(\w+)\)\(.*\)", stmt)
        if m:
            items["callback " + m.group(1)] = stmt
            continue
        m = re.match(r"[^(]*?(\w+)\(", stmt)
        if m:
            items["function " + m.group(1)] = stmt
            continue
        raise SystemExit(f"check-abi: cannot classify {stmt!r}")
    return items, version


def check(current_text, released_text):
    """Returns a list of problems (empty: compatible) and a report line."""
    cur, (cmaj, cmin) = declarations(current_text)
    old, (omaj, omin) = declarations(released_text)
    removed = sorted(k for k in old if k not in cur)
    changed = sorted(k for k in old if k in cur and cur[k] != old[k])
    added = sorted(k for k in cur if k not in old)
    problems = []
    if cmaj == omaj:
        for k in removed:
            problems.append(f"removed: {k} (needs RM_ABI_VERSION_MAJOR {omaj + 1})")
        for k in changed:
            problems.append(
                f"changed: {k}: {old[k]!r} -> {cur[k]!r} (needs RM_ABI_VERSION_MAJOR {omaj + 1})"
            )
        if added and cmin <= omin:
            problems.append(
                f"added {', '.join(added)} without raising RM_ABI_VERSION_MINOR above {omin}"
            )
        if cmin < omin:
            problems.append(f"RM_ABI_VERSION_MINOR went down from {omin} to {cmin}")
    elif cmaj == omaj + 1 and cmin == 0:
        pass
    else:
        problems.append(
            f"ABI {cmaj}.{cmin} after release {omaj}.{omin}: expected {omaj}.x or {omaj + 1}.0"
        )
    report = (
        f"ABI {cmaj}.{cmin} against the released {omaj}.{omin}: {len(old)} declarations, "
        f"{len(added)} added, {len(changed)} changed, {len(removed)} removed"
    )
    return problems, report


def self_test():
    """The checker catches each rule's violation on edited copies of the header."""
    text = CURRENT.read_text()
    cur_major = declarations(text)[1][0]

    def with_version(t, major, minor):
        t = re.sub(r"#define RM_ABI_VERSION_MAJOR \d+", f"#define RM_ABI_VERSION_MAJOR {major}", t)
        return re.sub(r"#define RM_ABI_VERSION_MINOR \d+", f"#define RM_ABI_VERSION_MINOR {minor}", t)

    base = with_version(text, cur_major, 3)
    new_fn = base.replace(
        "uint32_t rm_abi_version(void);",
        "uint32_t rm_abi_version(void);\n\nint rm_new_thing(int x);",
    )
    struct_grown = re.sub(r"(typedef struct rm_status \{)", r"\1\n  uint64_t extra;", base)
    enum_added = re.sub(r"(typedef enum rm_result \{)", r"\1\n  RM_RESULT_NEW_THING = 999,", base)
    cases = [
        ("unchanged", base, True),
        ("function added, same minor", new_fn, False),
        ("function added, minor raised", with_version(new_fn, cur_major, 4), True),
        ("enum value added, minor raised", with_version(enum_added, cur_major, 4), True),
        ("function removed", base.replace("uint32_t rm_abi_version(void);", ""), False),
        (
            "signature changed",
            base.replace("uint32_t rm_abi_version(void);", "uint64_t rm_abi_version(void);"),
            False,
        ),
        ("struct field added", with_version(struct_grown, cur_major, 4), False),
        ("struct field added, major raised", with_version(struct_grown, cur_major + 1, 0), True),
        ("enum value renumbered", base.replace("RM_RESULT_OK = 0", "RM_RESULT_OK = 100"), False),
        ("minor lowered", with_version(base, cur_major, 2), False),
        ("major raised by 2", with_version(base, cur_major + 2, 0), False),
    ]
    failed = 0
    for name, edited, want_ok in cases:
        problems, _ = check(edited, base)
        ok = not problems
        if ok != want_ok:
            failed += 1
            print(f"check-abi self-test: {name}: expected {'pass' if want_ok else 'failure'}, got {problems}")
    if declarations(base)[0] == {}:
        failed += 1
        print("check-abi self-test: no declarations parsed")
    print(f"check-abi self-test: {len(cases) - failed}/{len(cases)} cases as expected")
    return failed == 0


def main():
    arg = sys.argv[1] if len(sys.argv) > 1 else ""
    if arg == "--release":
        RELEASED.parent.mkdir(exist_ok=True)
        shutil.copyfile(CURRENT, RELEASED)
        print(f"check-abi: {RELEASED.relative_to(HERE.parent)} is now the released header")
        return 0
    if arg == "--self-test":
        return 0 if self_test() else 1
    problems, report = check(CURRENT.read_text(), RELEASED.read_text())
    for p in problems:
        print("check-abi: " + p, file=sys.stderr)
    print("check-abi: " + report + (": incompatible" if problems else ": compatible"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

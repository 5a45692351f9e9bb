#!/usr/bin/env python3
"""Refuses an #include that crosses a layer the build does not declare.

Usage: check_layers.py SOURCE_DIR LAYERS_FILE

LAYERS_FILE (written by CMakeLists.txt) has one line per area:
    name|dir|dep1,dep2:public,...|header1.hpp,header2.hpp
An area's files may include its own headers, the headers (internal under
src/<dir>/ or public under include/voxq/) of the areas it depends on, and,
for a dependency marked ":public", only that area's public headers. Every
area may include voxq/errors.hpp: the error vocabulary is a header of
classes (util throws ConfigError without linking the core). Dependencies are
not transitive: each area declares what it includes.
"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
VOCABULARY = {"voxq/errors.hpp"}


def main():
    root = pathlib.Path(sys.argv[1])
    areas = {}
    for line in pathlib.Path(sys.argv[2]).read_text().splitlines():
        if not line.strip():
            continue
        name, directory, deps, headers = (line.split("|") + ["", "", ""])[:4]
        areas[name] = {
            "dir": directory,
            "deps": {d.split(":")[0]: d.endswith(":public") for d in deps.split(",") if d},
            "headers": {"voxq/" + h for h in headers.split(",") if h},
        }

    def owner_of(include):
        """(area, is_public) of an included path, or None for a foreign header."""
        if include.startswith("voxq/"):
            for name, a in areas.items():
                if include in a["headers"]:
                    return name, True
            return None
        best = None
        for name, a in areas.items():
            prefix = a["dir"].removeprefix("src/") + "/"
            if a["dir"].startswith("src/") and include.startswith(prefix):
                if best is None or len(prefix) > len(best[1]):
                    best = (name, prefix)
        return (best[0], False) if best else None

    problems = []

    def check(path, area):
        for include in INCLUDE.findall(path.read_text(errors="replace")):
            if include in VOCABULARY:
                continue
            owner = owner_of(include)
            if owner is None:
                if include.startswith("voxq/"):
                    problems.append(f"{path}: {include} belongs to no area (add it to PUBLIC_HEADERS)")
                continue
            target, public = owner
            if target == area:
                continue
            deps = areas[area]["deps"]
            if target not in deps:
                problems.append(f"{path}: includes {include} of area '{target}', "
                                f"which '{area}' does not depend on")
            elif deps[target] and not public:
                problems.append(f"{path}: includes {include}, an internal header of '{target}'; "
                                f"'{area}' may use only its public headers")

    for name, a in areas.items():
        for path in sorted((root / a["dir"]).rglob("*")):
            if path.suffix in (".cpp", ".hpp"):
                check(path, name)
        for header in a["headers"]:
            path = root / "include" / header
            if not path.exists():
                problems.append(f"{name}: declares {header}, which does not exist")
            else:
                check(path, name)
    for path in sorted((root / "include" / "voxq").glob("*.hpp")):
        if owner_of("voxq/" + path.name) is None:
            problems.append(f"{path}: belongs to no area (add it to an area's PUBLIC_HEADERS)")

    if problems:
        print("layering: " + str(len(problems)) + " include(s) cross an undeclared layer:",
              file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

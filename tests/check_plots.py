#!/usr/bin/python3
"""check_plots.py PLOT_PY OUT_DIR STEM... -- PLOT_PY_ARGS...

Empties OUT_DIR, runs `PLOT_PY PLOT_PY_ARGS... -o OUT_DIR` with this
interpreter, and fails (exit 1) unless plot.py exits 0 and OUT_DIR then holds
exactly STEM.png and STEM.svg for every STEM: a PNG that starts with the PNG
signature and has a non-empty image, and an SVG that parses as XML with an
<svg> root. Emptying OUT_DIR first keeps files from an earlier run from
passing for this one.
"""
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_problem(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if not head.startswith(PNG_SIGNATURE):
        return "no PNG signature"
    # the first chunk is IHDR: width and height, big-endian, after its length and type
    if head[12:16] != b"IHDR":
        return "no IHDR chunk"
    width, height = struct.unpack(">II", head[16:24])
    return None if width > 0 and height > 0 else f"empty image ({width}x{height})"


def svg_problem(path):
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        return f"not XML: {e}"
    return None if root.tag.endswith("svg") else f"root element <{root.tag}>, not <svg>"


def problems(out_dir, stems):
    expected = {f"{stem}.{ext}" for stem in stems for ext in ("png", "svg")}
    written = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
    found = [f"missing: {name}" for name in sorted(expected - written)]
    found += [f"not expected: {name}" for name in sorted(written - expected)]
    for name in sorted(expected & written):
        path = os.path.join(out_dir, name)
        check = png_problem if name.endswith(".png") else svg_problem
        why = "empty file" if os.path.getsize(path) == 0 else check(path)
        if why:
            found.append(f"{name}: {why}")
    return found


def main(argv):
    if "--" not in argv or argv.index("--") < 3:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    plot_py, out_dir, stems, plot_args = argv[0], argv[1], argv[2:split], argv[split + 1:]
    shutil.rmtree(out_dir, ignore_errors=True)
    code = subprocess.call([sys.executable, plot_py, *plot_args, "-o", out_dir], stdout=subprocess.DEVNULL)
    if code != 0:
        print(f"check_plots.py: plot.py exited {code}")
        return 1
    found = problems(out_dir, stems)
    for line in found:
        print(f"check_plots.py: {line}")
    print(f"check_plots.py: {len(stems)} figures expected, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

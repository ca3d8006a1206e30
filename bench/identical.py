"""Did a speedup change anything? Record the decision pass's findings and compare two runs.

    python bench/identical.py save before        # on the code before the change
    python bench/identical.py save after         # on the code after it
    python bench/identical.py compare before after

``save`` runs clearmark's decision pass (``_detect.find``: text lines, tiled marks, logos,
regions, score) on the 24 1-MP speed JPEGs and on the tuning set's single images, and folder
evidence (``_folder.estimate_shared_mark`` and ``match_shared_mark``) on the tuning set's
folders, and pickles every field of every finding to ``bench/out/identical-NAME.pkl``
(bench/out/ is git-ignored). ``compare`` says which images differ and in which field: floats
must be equal, arrays equal in dtype, shape and values. A change meant to be faster only
(see the commits "... with identical findings") must compare equal here. It takes about a
minute. It never looks at the reporting set.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dataset  # noqa: E402
from clearmark import _folder  # noqa: E402
from clearmark._detect import DEFAULT_CONFIG, find, working_copy  # noqa: E402
from clearmark._imageio import load_image  # noqa: E402

import synth  # noqa: E402

KINDS = ("corner_text", "logo", "logo_text", "tiled", "clean", "clean_hard")


def plain(value: Any) -> Any:
    """A finding as nested tuples, dicts and arrays, every field kept (comparable exactly)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return tuple(plain(v) for v in value)
    return value


def findings() -> dict[str, Any]:
    font = synth.find_cjk_font()
    cjk = str(font) if font else None
    out: dict[str, Any] = {}
    specs = dataset.speed_specs("report", 24) + dataset.specs("tune", kinds=KINDS, cjk=bool(cjk))
    for spec in specs:
        small = load_image(dataset.build(spec, cjk).data, max_side=DEFAULT_CONFIG.working_side)
        out[spec.name] = plain(find(small.rgb, small.size))
    for group in range(dataset.FULL_COUNTS["folder"]):
        grays = []
        for spec in dataset.folder_specs("tune", group):
            small = load_image(dataset.build(spec, cjk).data,
                               max_side=DEFAULT_CONFIG.working_side)
            gray = _folder.working_gray(working_copy(small.rgb, small.size))
            grays.append(gray.astype(np.uint8).astype(np.float32))  # as the runner keeps it
        mark = _folder.estimate_shared_mark(grays)
        matches = [plain(_folder.match_shared_mark(g, mark)) for g in grays] if mark else []
        out[f"tune-folder-{group}"] = {"mark": plain(mark), "matches": tuple(matches)}
    return out


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        same = (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        return [] if same else [where or "value"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: fields {sorted(a)} vs {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{where}[{i}]")]
    return [] if type(a) is type(b) and a == b else [f"{where}: {a!r} vs {b!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("save").add_argument("name")
    compare = sub.add_parser("compare")
    compare.add_argument("before")
    compare.add_argument("after")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    out = HERE / "out"
    if args.command == "save":
        out.mkdir(exist_ok=True)
        found = findings()
        (out / f"identical-{args.name}.pkl").write_bytes(pickle.dumps(found))
        print(f"{len(found)} images and folders saved to bench/out/identical-{args.name}.pkl")
        return
    before, after = (pickle.loads((out / f"identical-{n}.pkl").read_bytes())
                     for n in (args.before, args.after))
    changed = {name: differences(before[name], after.get(name)) for name in before}
    changed = {name: found for name, found in changed.items() if found}
    for name, found in changed.items():
        print(f"{name}: {len(found)} field(s) differ, e.g. {found[0]}")
    print(f"{len(before) - len(changed)} of {len(before)} identical")
    sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()

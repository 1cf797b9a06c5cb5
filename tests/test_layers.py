"""Architecture rules, checked on the source text: no import goes up a layer, and no module grows past 400 lines.

Layers, bottom to top (a module may import its own layer and the ones below it):

    base      data model and readers/writers, label ids, errors, the version
    geometry  AHA geometry on a patient's labels
    phantom   procedural patients (needs AHA truth)
    masks     SMILE scar masks on the AHA geometry
    models    generator, segmenter, metrics
    joint     generator and segmenter trained together
    figures   plots that stages and reports write (domain results in, image file out)
    stages    folder in, folder out: one CLI command each
    study     the study, its report, the demo
    cli       argument parsing

To move a package, edit ``LAYER_OF``; the most specific prefix wins.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "claim"
MAX_MODULE_LINES = 400

LAYERS = ("base", "geometry", "phantom", "masks", "models", "joint", "figures", "stages", "study", "cli")

LAYER_OF = {
    "claim": "base",  # the package itself: __version__ and ClaimError
    "claim.errors": "base",
    "claim.labels": "base",
    "claim.config": "base",
    "claim.runtime": "base",
    "claim.training": "base",
    "claim.data": "base",
    "claim.aha": "geometry",
    "claim.phantom": "phantom",
    "claim.smile": "masks",
    "claim.generator": "models",
    "claim.segmentation": "models",
    "claim.evaluation": "models",
    "claim.joint": "joint",
    "claim.report.figures": "figures",
    "claim.report.orientation": "figures",
    "claim.stages": "stages",
    "claim.experiment": "study",
    "claim.report": "study",
    "claim.demo": "study",
    "claim.cli": "cli",
    "claim.__main__": "cli",
    "claim.console": "cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    prefixes = [p for p in LAYER_OF if module == p or module.startswith(p + ".")]
    if not prefixes:
        raise KeyError(f"{module} has no layer: add its package to LAYER_OF in tests/test_layers.py")
    return LAYER_OF[max(prefixes, key=len)]


def claim_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a claim module, also those inside functions (lazy imports count)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "claim"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "claim":
            # "from claim.x import y" may name a submodule y: judge it by the more specific name
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = []
    for path in MODULES:
        try:
            layer_of(module_name(path))
        except KeyError as exc:
            unknown.append(str(exc))
    assert not unknown, "\n".join(unknown)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_goes_up_a_layer(path):
    module = module_name(path)
    rank = LAYERS.index(layer_of(module))
    upward = [
        f"{path.relative_to(SRC)}:{line} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for line, target in claim_imports(path)
        if LAYERS.index(layer_of(target)) > rank
    ]
    assert not upward, "\n".join(upward)


# claim.data is the bottom: besides itself it may use only the label ids, the errors and the version.
DATA_MAY_IMPORT = ("claim.data", "claim.labels", "claim.errors", "claim.__version__")


@pytest.mark.parametrize("path", sorted((PACKAGE / "data").rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_data_imports_nothing_but_the_bottom(path):
    outside = [
        f"{path.relative_to(SRC)}:{line} imports {target}"
        for line, target in claim_imports(path)
        if not any(target == allowed or target.startswith(allowed + ".") for allowed in DATA_MAY_IMPORT)
    ]
    assert not outside, "\n".join(outside)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_stays_under_the_size_limit(path):
    n_lines = len(path.read_text().splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{path.relative_to(SRC)} has {n_lines} lines (> {MAX_MODULE_LINES}): split it"


def test_the_layer_table_catches_an_upward_import(tmp_path):
    # A guard on the guard: a data module importing a stage must be reported.
    assert LAYERS.index(layer_of("claim.data.layouts")) < LAYERS.index(layer_of("claim.stages.masks"))
    assert layer_of("claim.report.figures") == "figures" and layer_of("claim.report.study") == "study"
    fake = tmp_path / "mod.py"
    fake.write_text("def f():\n    from claim.stages.masks import run_masks\n")
    assert claim_imports(fake) == [(2, "claim.stages.masks.run_masks")]

"""The package's shape: imports go one way (no module imports one that imports it back),
no private name is used outside its module, and the command answers a bad scenario before
it imports TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ct3d
from ct3d.scenario import Scenario

PACKAGE = Path(ct3d.__file__).parent
TESTS = Path(__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported(node: ast.AST, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(module, names) pairs of one import statement, relative imports resolved."""
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
            base = ".".join([*anchor, base] if base else anchor)
        return [(base, [alias.name for alias in node.names])]
    return []


def _edges(path: Path, module: str) -> tuple[set[str], list[tuple[str, str]]]:
    """The ct3d modules ``path`` imports (anywhere in it, functions included), and the
    (module, name) pairs it imports by name."""
    targets: set[str] = set()
    names: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        for base, imported in _imported(node, module, path.name == "__init__.py"):
            if not base.startswith("ct3d"):
                continue
            for name in imported:
                names.append((base, name))
                if f"{base}.{name}" in MODULES:
                    targets.add(f"{base}.{name}")
            if base in MODULES and not any(f"{base}.{n}" in MODULES for n in imported):
                targets.add(base)
    targets.discard(module)
    return targets, names


def _graph() -> dict[str, set[str]]:
    return {m: _edges(p, m)[0] for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    assert len(graph) > 60 and "ct3d.engine.runner" in graph["ct3d.engine"]
    assert _cycles(graph) == []


def test_the_core_never_imports_the_layers_above_it() -> None:
    above = {"ct3d.engine": ("ct3d.report", "ct3d.widgets", "ct3d.cli"),
             "ct3d.data": ("ct3d.engine", "ct3d.scenario", "ct3d.report", "ct3d.widgets"),
             "ct3d.io": ("ct3d.preprocess", "ct3d.data", "ct3d.engine", "ct3d.scenario"),
             "ct3d.preprocess": ("ct3d.data", "ct3d.engine", "ct3d.scenario"),
             "ct3d.models": ("ct3d.data", "ct3d.engine", "ct3d.scenario")}
    graph = _graph()
    wrong = [(m, t) for m, targets in graph.items() for layer, banned in above.items()
             if m == layer or m.startswith(layer + ".") for t in targets
             if t.startswith(banned)]
    assert wrong == []
    assert not [m for m, t in graph.items() if not m.startswith("ct3d.widgets")
                and any(x.startswith("ct3d.widgets") for x in t)]


def test_no_private_name_is_used_outside_its_module() -> None:
    used = []
    for path in [*PACKAGE.rglob("*.py"), *TESTS.glob("*.py")]:
        module = _module_name(path) if path.is_relative_to(PACKAGE) else path.stem
        _, names = _edges(path, module)
        used += [f"{path.name}: {base}.{name}" for base, name in names
                 if name.startswith("_") and not name.startswith("__")]
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                    and node.value.id in ("ct3d", "devices", "pipeline", "rundir")):
                used.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert used == []


def _train_in_subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = ("import sys\nfrom ct3d.cli import main\nstatus = main(sys.argv[1:])\n"
            "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow')\n"
            "sys.exit(status)")
    return subprocess.run([sys.executable, "-c", code, "train", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("overrides", "message"), [
    (["--set", "train.epocs=3"],
     "ct3d: error: override 'train.epocs': unknown key 'epocs' (did you mean 'epochs'?)"),
    (["--set", "data.source=folder", "--set", "data.root=no-such-folder"],
     "ct3d: error: invalid scenario: no-such-folder: data folder not found (data.root, "
     "data.source=folder)"),
    (["--set", "preprocess.2.params.shape=[40,40,40]"],
     "ct3d: error: invalid scenario: model 'modified_3dcnn' needs every side of its input "
     ">= 46 voxels, but the preprocess chain gives (40, 40, 40)"),
    (["--set", "model.params.weights=gone.weights.h5"],
     "ct3d: error: invalid scenario: gone.weights.h5: weights file not found "
     "(model.params.weights; nothing is downloaded)"),
    (["--set", "train.epochs=0", "--set", "split.kind=kfold", "--set", "split.k=1"],
     "ct3d: error: invalid scenario:\n  - train.epochs must be >= 1, got 0\n  - kfold split "
     "needs k >= 2"),
])
def test_a_bad_scenario_is_refused_at_once_in_one_line_without_tensorflow(
    tmp_path: Path, overrides: list[str], message: str,
) -> None:
    Scenario.preset("quick").to_yaml(tmp_path / "s.yaml")
    proc = _train_in_subprocess(["s.yaml", *overrides], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message)
    assert len(proc.stderr.splitlines()) == 1 + message.count("  - ")  # a line per problem
    assert proc.stdout.strip() == "no tensorflow"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written


def test_an_existing_run_folder_is_refused_unless_forced_or_resumed(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "quick"
    run_dir.mkdir(parents=True)
    scenario = Scenario.preset("quick").with_overrides({"out": "runs/quick"})
    scenario.to_yaml(run_dir / "scenario.yaml")
    scenario.to_yaml(tmp_path / "s.yaml")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = _train_in_subprocess(["s.yaml"], tmp_path)
    assert proc.returncode == 2 and proc.stdout.strip() == "no tensorflow"
    assert proc.stderr == ("ct3d: error: runs/quick: already holds an unfinished run; continue "
                           "it with --resume runs/quick, or --force to start over\n")
    (run_dir / "metrics.json").write_text("{}")
    proc = _train_in_subprocess(["s.yaml"], tmp_path)
    assert proc.returncode == 2 and proc.stdout.strip() == "no tensorflow"
    assert proc.stderr == ("ct3d: error: runs/quick: already holds a finished run "
                           "(metrics.json); choose another --out, or --force to replace it\n")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == sorted(
        [*before, Path("runs/quick/metrics.json")])
    proc = _train_in_subprocess(["--resume", str(tmp_path / "s.yaml")], tmp_path)
    assert proc.returncode == 2 and "no run to resume (no scenario.yaml)" in proc.stderr
    proc = _train_in_subprocess(["--resume", "runs/quick", "--force"], tmp_path)
    assert proc.returncode == 2 and "give no scenario file, --set, --out or --force" in proc.stderr


def test_a_chain_of_unknown_output_shape_is_checked_before_any_model(
    cohort_root: Path, tmp_path: Path, make_scenario,  # noqa: ANN001
) -> None:
    data = make_scenario(cohort_root, tmp_path / "run", **{
        "preprocess.2.params.shape": [40, 40, 40]}).to_dict()
    # lung_crop's output shape depends on the scan (here, windowed, it finds no lungs and
    # keeps the volume): validation cannot know it
    data["preprocess"].append({"name": "lung_crop", "params": {}})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    proc = _train_in_subprocess(["s.yaml"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "ct3d: error: model 'modified_3dcnn' needs every side of its input >= 46 voxels, but "
        "the preprocessed scans are (40, 40, 40): end the preprocess chain with a larger "
        "resize, or choose another model")
    assert proc.stdout.strip().endswith("no tensorflow")
    assert not (tmp_path / "run").exists()

"""The package's shape: imports flow one way (no cycle between modules or between packages),
`import nlm.cli` stays free of torch so `nlm --help` is instant, and modules stay small enough to read."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "nlm"
MAX_MODULE_LINES = 300
MAX_TRAINER_LINES = 200


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (imports for annotations only, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every nlm module `path` imports, at module level or inside a function (a lazy import is still a dependency)."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != "nlm":
                found.add(name)
                break
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_of(module: str) -> str:
    """nlm.text.vocab -> nlm.text; nlm.config -> nlm.config (a top-level module is its own place)."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, imports in import_graph().items():
        packages[package_of(module)] |= {package_of(m) for m in imports} - {package_of(module)}
    assert cycles(packages) == []


# The layers, top to bottom: a module imports from its own layer or the ones below, never from one above.
LAYERS = (
    {"nlm.__main__", "nlm.cli"},
    {"nlm", "nlm.api"},  # the public Python API, which `nlm` itself re-exports (its `__version__` is a constant)
    {"nlm.lm", "nlm.classify", "nlm.autoencode", "nlm.eval", "nlm.corpora"},
    {"nlm.train", "nlm.models", "nlm.text", "nlm.images", "nlm.io"},
    {"nlm.config", "nlm.errors", "nlm.runtime", "nlm.units"},
)


def test_no_module_imports_from_a_layer_above_its_own():
    layer = {package: depth for depth, packages in enumerate(LAYERS) for package in packages}
    graph = import_graph()
    assert {package_of(m) for m in graph} <= set(layer)  # every package has its layer
    upward = sorted(
        f"{m} -> {i}" for m, imports in graph.items() for i in imports if layer[package_of(i)] < layer[package_of(m)]
    )
    assert upward == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_importing_the_cli_loads_no_torch():
    heavy = ("torch", "numpy", "sentencepiece", "sacrebleu", "matplotlib")
    code = f"import sys, nlm.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_modules_stay_short():
    """Counted as ruff formats them, one statement a line: nothing is packed to fit."""
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--quiet", str(PACKAGE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert formatted.returncode == 0, f"run `ruff format nlm` first:\n{formatted.stdout}{formatted.stderr}"
    long = {
        str(p.relative_to(REPO)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
    assert len((PACKAGE / "train" / "trainer.py").read_text().splitlines()) <= MAX_TRAINER_LINES


def test_commands_pass_their_options_by_name():
    """No `dict(locals())`: a command hands its library function each option by name, so a reader sees what it
    passes."""
    calls = {
        f"{p.relative_to(REPO)}:{node.lineno}"
        for p in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("locals", "vars") and not node.args
    }
    assert calls == set()


def test_loading_and_scoring_a_language_model_imports_only_what_they_use():
    """`nlm score` in a pipeline pays for torch and nothing it does not need (start-up, bench/startup.py)."""
    code = (
        "import sys, nlm.lm.loading, nlm.lm.scoring, nlm.lm.perplexity, nlm.lm.generation; "
        "print(sorted(m for m in ('sentencepiece', 'sacrebleu', 'rich', 'matplotlib', 'PIL') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# The language-model commands reach the library's work through nlm.api only, so the command line and Python
# cannot disagree; what they may still take from the library directly is presentation (and `nlm evaluate`'s
# own work, which the API does not cover).
API_COMMANDS = ("nlm/cli/score.py", "nlm/cli/generate.py", "nlm/cli/next_tokens.py", "nlm/cli/lm.py")
PRESENTATION = {
    "nlm.lm.scoring": {"CorpusSummary"},
    "nlm.lm.generation": {"SamplingConfig", "evaluate_generation"},
    "nlm.lm.memory": {"marked_accuracy"},
}


def test_the_language_model_commands_go_through_the_api():
    direct = {
        f"{name}: {node.module}.{alias.name}"
        for name in API_COMMANDS
        for node in ast.walk(ast.parse((REPO / name).read_text()))
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("nlm.lm")
        and node.module != "nlm.lm.config"
        for alias in node.names
        if alias.name not in PRESENTATION.get(node.module, set())
    }
    assert direct == set()
    assert all("from nlm.api" in (REPO / name).read_text() for name in ("nlm/cli/score.py", "nlm/cli/lm.py"))

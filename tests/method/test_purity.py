"""method/ is the pure part of the project: torch and the standard library only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import textboost_ext.method as method

METHOD_DIR = Path(method.__file__).parent
FORBIDDEN = ("diffusers", "transformers", "accelerate", "PIL", "peft", "safetensors", "huggingface_hub", "bitsandbytes")


def imported_top_level_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_method_modules_import_only_torch_stdlib_and_each_other() -> None:
    files = sorted(METHOD_DIR.glob("*.py"))
    assert {f.stem for f in files} >= {"__init__", "timesteps", "augment", "tokens", "preservation", "captions"}
    for path in files:
        extra = imported_top_level_modules(path) - set(sys.stdlib_module_names) - {"torch", "textboost_ext"}
        assert not extra, f"{path.name} imports {sorted(extra)}"
        source = path.read_text(encoding="utf-8")
        assert "from textboost_ext." not in source.replace("from textboost_ext.method", ""), path.name


def test_importing_method_loads_no_heavy_library() -> None:
    code = "import sys, textboost_ext.method; print(','.join(m for m in %r if m in sys.modules))" % (FORBIDDEN,)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == ""


def test_public_api_is_exported() -> None:
    for name in method.__all__:
        assert hasattr(method, name), name

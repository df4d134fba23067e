"""The README and the guides stay true: links resolve, Python examples parse and import only
public names, settings examples load, DAG examples check, and every ``helios`` command they
show exists."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest
import typer.main

import helios
from helios.cli.app import app
from helios.config.settings import load_settings
from helios.pipeline.dag import load_dag
from helios.pipeline.personas import load_personas

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.M | re.S)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for match in FENCE.finditer(page.read_text(encoding="utf-8")):
            if match.group(2) == language:
                found.append((page.name, textwrap.dedent(match.group(3))))
    return found


def test_there_are_guides_and_the_readme_links_each() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    guides = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    assert guides
    for guide in guides:
        assert f"(docs/{guide})" in readme, f"README does not link docs/{guide}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize(("page", "code"), blocks("python"))
def test_python_examples_parse_and_import_public_names(page: str, code: str) -> None:
    tree = ast.parse(code.replace("await run_dialectic", "run_dialectic"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "helios":
            for alias in node.names:
                assert alias.name in helios.__all__, f"{page}: helios has no {alias.name}"


def _is_dag(text: str) -> bool:
    return "tasks:" in text and "name:" in text


@pytest.mark.parametrize(("page", "text"), blocks("yaml"))
def test_yaml_examples_load(page: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(text, encoding="utf-8")
    if _is_dag(text):
        load_dag(path, personas=list(load_personas(load_settings(None))))
    else:
        load_settings(path)


def _commands() -> set[str]:
    click_app = typer.main.get_command(app)
    names: set[str] = set()
    for name, command in click_app.commands.items():  # type: ignore[attr-defined]
        names.add(name)
        for sub in getattr(command, "commands", {}):
            names.add(f"{name} {sub}")
    return names


@pytest.mark.parametrize(("page", "script"), blocks("sh"))
def test_shell_examples_name_existing_commands(page: str, script: str) -> None:
    known = _commands()
    for line in script.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "helios":
            continue
        if len(words) == 1 or words[1].startswith("-"):
            continue
        group = " ".join(words[1:3])
        assert words[1] in known or group in known, f"{page}: unknown command in {line!r}"
        if any(name.startswith(f"{words[1]} ") for name in known):
            assert group in known, f"{page}: unknown subcommand in {line!r}"

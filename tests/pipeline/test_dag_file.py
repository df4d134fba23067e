"""DAG files: YAML and JSON, and every validation error names the file and the field."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from helios.config.settings import Settings
from helios.pipeline.dag import Dag, DagError, TaskSpec, check_dag, find_cycle, load_dag
from helios.pipeline.personas import load_personas

GOOD = """
name: launch
concurrency: 2
failure_policy: continue
tasks:
  - id: market
    persona: zeitgeist
    prompt: "Trends for {goal}"
  - id: story
    persona: bard
    depends_on: [market]
    priority: 3
    timeout_s: 30
    retries: 2
    prompt: "Story for {goal} from {market}"
  - id: debate
    kind: dialectic
    docs: [notes.md]
    prompt: "{goal}"
  - id: sub
    kind: dag
    dag:
      tasks:
        - {id: one, persona: bard}
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def personas() -> list[str]:
    return list(load_personas(Settings()))


def test_loads_yaml_with_defaults_and_relative_docs(tmp_path: Path) -> None:
    dag = load_dag(write(tmp_path, GOOD), personas=personas())
    assert dag.name == "launch" and dag.concurrency == 2 and dag.failure_policy == "continue"
    story = dag.task("story")
    assert story.depends_on == ["market"] and story.priority == 3 and story.retries == 2
    assert story.backoff_s == 0.5 and story.timeout_s == 30
    assert dag.task("debate").docs == [str(tmp_path / "notes.md")]
    sub = dag.task("sub").dag
    assert sub is not None and sub.tasks[0].prompt == "{goal}"


def test_loads_json(tmp_path: Path) -> None:
    data = {
        "tasks": [
            {"id": "a", "persona": "bard"},
            {"id": "b", "persona": "bard", "depends_on": ["a"], "prompt": "{a}"},
        ]
    }
    dag = load_dag(write(tmp_path, json.dumps(data), "plan.json"))
    assert [t.id for t in dag.tasks] == ["a", "b"] and dag.concurrency == 4


def test_cycle_error_names_the_cycle(tmp_path: Path) -> None:
    text = """
tasks:
  - {id: start, persona: bard}
  - {id: a, persona: bard, depends_on: [c, start]}
  - {id: b, persona: bard, depends_on: [a]}
  - {id: c, persona: bard, depends_on: [b]}
"""
    path = write(tmp_path, text)
    with pytest.raises(DagError) as info:
        load_dag(path)
    assert str(path) in str(info.value)
    assert "cycle a → b → c → a" in str(info.value)


def test_self_dependency_is_a_cycle() -> None:
    dag = Dag(tasks=[TaskSpec(id="a", persona="bard", depends_on=["a"])])
    assert find_cycle(dag) == ["a", "a"]


def test_a_cycle_is_found_in_any_graph_and_only_there() -> None:
    rng, found = random.Random(0), 0
    for _ in range(300):
        size = rng.randint(1, 8)
        ids = [f"t{n}" for n in range(size)]
        # needs only earlier tasks: acyclic, so t needs (transitively) only what precedes it
        needs = {i: set(rng.sample(ids[:n], rng.randint(0, n))) for n, i in enumerate(ids)}
        below = {i: set[str]() for i in ids}
        for i in ids:
            for dependency in needs[i]:
                below[i] |= {dependency} | below[dependency]
        # one more edge, "a needs b", closes a loop exactly when b already needs a
        a, b = rng.choice(ids), rng.choice(ids)
        needs[a].add(b)
        cyclic = a == b or a in below[b]
        found += cyclic
        dag = Dag(tasks=[TaskSpec(id=i, persona="bard", depends_on=sorted(needs[i])) for i in ids])
        cycle = find_cycle(dag)
        if not cyclic:
            assert cycle == []
            continue
        assert cycle[0] == cycle[-1] and len(cycle) >= 2
        assert all(before in needs[after] for before, after in itertools.pairwise(cycle))
    assert 50 < found < 250  # both kinds were tried


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tasks:\n  - {id: a, persona: bard, depends_on: [ghost]}\n",
            "tasks[0] (a).depends_on: unknown task 'ghost'",
        ),
        (
            "tasks:\n  - {id: a, persona: nobody}\n",
            "tasks[0] (a).persona: unknown persona 'nobody'",
        ),
        (
            "tasks:\n  - {id: a, persona: bard}\n  - {id: a, persona: bard}\n",
            "tasks[1].id: duplicate task id 'a'",
        ),
        (
            "tasks:\n  - {id: a, persona: bard, prompt: 'use {b}'}\n  - {id: b, persona: bard}\n",
            "tasks[0] (a).prompt: placeholder {b} is neither goal nor a dependency",
        ),
        ("tasks:\n  - {id: a, persona: bard, prompt: 'bad {'}\n", "tasks[0] (a).prompt:"),
        ("tasks:\n  - {id: a}\n", "tasks[0] (a).persona: a persona task needs a persona"),
        ("tasks:\n  - {id: a, kind: dag}\n", "tasks[0] (a).dag: a dag task needs a nested dag"),
        ("tasks:\n  - {id: a, persona: bard, retries: -1}\n", "tasks[0] (a).retries"),
        ("tasks:\n  - {id: a, persona: bard, colour: red}\n", "tasks[0] (a).colour"),
        ("tasks: []\n", "tasks:"),
        ("concurrency: 0\ntasks:\n  - {id: a, persona: bard}\n", "concurrency"),
        ("- just a list\n", "expected a mapping"),
        ("tasks: [unclosed\n", "not valid YAML"),
    ],
)
def test_errors_name_the_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DagError) as info:
        load_dag(path, personas=personas())
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_nested_dag_errors_say_where(tmp_path: Path) -> None:
    text = (
        "tasks:\n  - id: sub\n    kind: dag\n    dag:\n"
        "      tasks:\n        - {id: x, persona: nobody}\n"
    )
    with pytest.raises(DagError, match=r"tasks\[0\] \(sub\)\.dag: tasks\[0\] \(x\)\.persona"):
        load_dag(write(tmp_path, text), personas=personas())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DagError, match="cannot read the DAG file"):
        load_dag(tmp_path / "nope.yaml")


def test_check_dag_without_personas_skips_that_check() -> None:
    check_dag(Dag(tasks=[TaskSpec(id="a", persona="anyone")]))

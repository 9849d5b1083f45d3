"""pyproject.toml without a lock: PEP 621, PEP 735 groups, Poetry's tables and constraints."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.project.declared import declared_requirements, pep440, requirement_name

WHERE = Path("/p/pyproject.toml")

PROJECT = {
    "project": {
        "name": "My.App",
        "dependencies": ["attrs>=23"],
        "optional-dependencies": {"Yaml": ["pyyaml"], "all": ["my-app[yaml]", "six"]},
    },
    "dependency-groups": {
        "test": ["pytest"],
        "dev": [{"include-group": "test"}, "ruff"],
    },
}


def test_only_the_main_dependencies_by_default():
    assert declared_requirements(PROJECT, WHERE) == ["attrs>=23"]


def test_extras_by_normalized_name_and_self_references_are_expanded():
    assert declared_requirements(PROJECT, WHERE, ("all",)) == ["attrs>=23", "pyyaml", "six"]
    assert declared_requirements(PROJECT, WHERE, ("yaml",)) == ["attrs>=23", "pyyaml"]


def test_dependency_groups_include_each_other():
    assert declared_requirements(PROJECT, WHERE, (), ("dev",)) == ["attrs>=23", "pytest", "ruff"]


def test_poetry_tables():
    data = {"tool": {"poetry": {
        "dependencies": {
            "python": "^3.10", "attrs": "^23.1",
            "requests": {"version": "~2.31", "optional": True},
            "pyyaml": {"version": ">=6", "markers": "sys_platform == 'linux'"},
            "lib": {"path": "../lib"},
            "tool": {"git": "https://example.invalid/tool.git", "rev": "abc"},
        },
        "extras": {"http": ["requests"]},
        "group": {"dev": {"dependencies": {"iniconfig": "^2"}}},
    }}}
    assert declared_requirements(data, WHERE) == [
        "attrs>=23.1,<24", "pyyaml>=6 ; (sys_platform == 'linux')",
        "tool @ git+https://example.invalid/tool.git@abc"]
    assert declared_requirements(data, WHERE, ("http",), ("dev",)) == [
        "attrs>=23.1,<24", "requests>=2.31,<2.32", "pyyaml>=6 ; (sys_platform == 'linux')",
        "tool @ git+https://example.invalid/tool.git@abc", "iniconfig>=2,<3"]


@pytest.mark.parametrize(("constraint", "specifier"), [
    ("^1.2.3", ">=1.2.3,<2"), ("^0.2.3", ">=0.2.3,<0.3"), ("^0.0.3", ">=0.0.3,<0.0.4"),
    ("^0", ">=0,<1"), ("^0.0", ">=0.0,<0.1"), ("~1.2.3", ">=1.2.3,<1.3"), ("~1.2", ">=1.2,<1.3"),
    ("~1", ">=1,<2"), ("1.2.3", "==1.2.3"), ("1.2.*", "==1.2.*"), (">=1 <2", ">=1,<2"),
    (">=1,<2", ">=1,<2"), ("*", ""), ("~=1.4", "~=1.4"), ("!=1.5", "!=1.5"),
])
def test_poetry_constraints_as_pep440(constraint, specifier):
    assert pep440(constraint) == specifier


def test_an_or_constraint_has_no_pep440_form():
    with pytest.raises(ValueError, match="poetry lock"):
        pep440("^1 || ^2")


@pytest.mark.parametrize(("extras", "groups", "message"), [
    (("nope",), (), "extra 'nope' (builder.yaml key 'extras') is not in "
     "[project.optional-dependencies] (it has: Yaml, all)"),
    ((), ("nope",), "dependency group 'nope' (builder.yaml key 'groups') is not declared"),
])
def test_unknown_extras_and_groups_name_what_exists(extras, groups, message):
    with pytest.raises(UsageError) as caught:
        declared_requirements(PROJECT, WHERE, extras, groups)
    assert message in str(caught.value)


def test_an_invalid_requirement_names_the_file():
    with pytest.raises(UsageError, match=r"pyproject\.toml: requirement 'six>>1' is not valid"):
        declared_requirements({"project": {"name": "a", "dependencies": ["six>>1"]}}, WHERE)


def test_requirement_names():
    assert [requirement_name(line) for line in (
        "Six==1", "zope.interface>=5", "pkg[extra] ; python_version<'4'", "x @ git+https://h/x",
        "Foo_Bar (>=1)")] == ["six", "zope-interface", "pkg", "x", "foo-bar"]

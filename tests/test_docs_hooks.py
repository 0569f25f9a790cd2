"""docs/plugins.md documents every hook, with its exact signature, and its code excerpts
still match the example plugin they are copied from (datasette's documented-hooks test)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from hermes_core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"


def hookspecs_by_name() -> dict[str, object]:
    """Every function in :mod:`hermes_core.hookspecs` marked with ``@hookspec``."""
    return {
        name: fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "hermes_spec")
    }


def documented_hooks() -> dict[str, str]:
    """``{hook name: heading text}`` for every ``### hermes_...`` heading in the guide."""
    out = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^###\s+`?(hermes_\w+)(\(.*?\))?`?\s*$", line)
        if m:
            out[m.group(1)] = m.group(1) + (m.group(2) or "")
    return out


def test_there_are_hooks():
    """Guard: the hookspec scan finds the hooks (so the checks below are not vacuous)."""
    assert len(hookspecs_by_name()) >= 7


@pytest.mark.parametrize("name", sorted(hookspecs_by_name()))
def test_hook_is_documented_with_its_signature(name):
    """Each hook has a `### name(signature)` heading in docs/plugins.md, signature as in the hookspec."""
    fn = hookspecs_by_name()[name]
    docs = documented_hooks()
    assert name in docs, f"docs/plugins.md has no '### {name}{inspect.signature(fn)}' heading"
    assert docs[name] == f"{name}{inspect.signature(fn)}", (
        f"docs/plugins.md documents '{docs[name]}', the hookspec is '{name}{inspect.signature(fn)}'"
    )


def test_no_documented_hook_is_stale():
    """No heading documents a hook that no longer exists."""
    stale = sorted(set(documented_hooks()) - set(hookspecs_by_name()))
    assert not stale, f"docs/plugins.md documents hooks that hermes_core/hookspecs.py lacks: {stale}"


def excerpts() -> list[tuple[str, str]]:
    """``(path, code)`` for every ``<!-- excerpt: path -->`` followed by a fenced block."""
    pattern = re.compile(r"<!-- excerpt: (\S+) -->\n```[\w-]*\n(.*?)\n```", re.S)
    return pattern.findall(DOC.read_text())


def test_guide_has_excerpts():
    """Guard: the guide still quotes the example plugin."""
    assert len(excerpts()) >= 5


@pytest.mark.parametrize("path,code", excerpts(), ids=lambda v: v if "\n" not in v else v.splitlines()[0][:40])
def test_excerpt_matches_its_source(path, code):
    """Every `<!-- excerpt: path -->` block appears verbatim in that file."""
    source = (ROOT / path).read_text()
    assert code in source, f"docs/plugins.md quotes code that is no longer in {path}:\n{code}"


# ---------------------------------------------------------------------------------------
# The guide's runnable examples run
# ---------------------------------------------------------------------------------------
PLUGIN_SRC = ROOT / "tests" / "plugins" / "hermes_example_plugin" / "src"


def fenced_block(lang: str, starts_with: str) -> str:
    """The first ```lang block in the guide whose code starts with ``starts_with``."""
    for code in re.findall(rf"```{lang}\n(.*?)\n```", DOC.read_text(), re.S):
        if code.startswith(starts_with):
            return code
    raise AssertionError(f"docs/plugins.md has no ```{lang} block starting with {starts_with!r}")


@pytest.fixture
def example_importable(monkeypatch):
    """Make ``hermes_example_plugin`` importable and keep an installed copy out."""
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.setenv("HERMES_DISABLE_PLUGINS", "example")
    monkeypatch.delenv("HERMES_LOAD_PLUGINS", raising=False)


def test_testing_section_example_runs(example_importable, monkeypatch):
    """The test shown in section 10 of the guide passes."""
    code = fenced_block("python", "import hermes_example_plugin")
    namespace: dict = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)  # noqa: S102 - our own docs
    namespace["test_runs_on_my_asic"](monkeypatch)


def test_tutorial_scenario_runs_as_shown(example_importable):
    """The scenario of section 7 completes the requests the guide shows, at the TPOT it claims."""
    import importlib

    import yaml

    from hermes_core import api, load_plugins

    example = importlib.import_module("hermes_example_plugin")
    scenario = yaml.safe_load(fenced_block("yaml", "name: example-asic-llama8b"))
    result = api.run(api.load_scenario(scenario), registry=load_plugins(extra=[("example", example)]))
    s = result.summary
    shown = re.search(r"(\d+) of (\d+) requests completed", DOC.read_text())
    assert (s["requests"]["completed"], s["requests"]["total"]) == (int(shown[1]), int(shown[2]))
    # The guide says "TPOT ~ 21 ms is what the roofline predicts"; keep that true.
    assert 18 < s["tpot_ms"]["mean"] < 25


def test_control_stage_scenario_runs_as_shown(example_importable):
    """The fan_out scenario of "Writing a control stage" gives the figures the guide quotes."""
    import importlib

    import yaml

    from hermes_core import api, load_plugins

    example = importlib.import_module("hermes_example_plugin")
    scenario = yaml.safe_load(fenced_block("yaml", "name: hedged-llama8b"))
    s = api.run(api.load_scenario(scenario), registry=load_plugins(extra=[("example", example)])).summary
    text = DOC.read_text()
    assert re.search(r"All (\d+) requests complete", text)[1] == str(s["requests"]["completed"])
    assert s["requests"]["completed"] == s["requests"]["total"]
    assert s["clients"]["hedge"]["hedge/0"] == {"won": {"slow": 0, "fast": 20}, "outstanding": 0}
    shown = {m[0]: float(m[1]) for m in re.findall(r"`(0:hedge(?:>\w+)?)` \((\d+\.\d)", text.replace("\n", " "))}
    steps = {st["step"]: st for st in s["request_types"]["chat"]["steps"]}
    assert set(shown) == set(steps) == {"0:hedge", "0:hedge>fast", "0:hedge>slow"}
    for label, ms in shown.items():
        assert round(steps[label]["service_ms"]["mean"], 1) == ms, label
        assert steps[label]["completed"] == 20
    busy = {d["device"]: d["busy_fraction"] for d in s["utilisation"]}
    assert f"A100 is busy {round(100 * busy['slow/0/dev0'])} %" in text

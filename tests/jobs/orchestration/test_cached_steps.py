"""The cached_steps facade: every name it had before the split imports from it as the same object, and
the names tests patch (``code_hash``, ``READS``) take effect where the steps' code looks them up."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pinrec.jobs.io import fingerprint
from pinrec.jobs.orchestration import cached_steps, day_steps, landing_step, steps_base

#: Every public name cached_steps.py defined (or imported for its users) before the split, and its module now.
HOME = {
    "READS": steps_base, "MODULES": steps_base, "StepsBase": steps_base, "code_hash": fingerprint,
    "LANDING_MARKER": landing_step, "LandingSteps": landing_step, "landing_dataset": landing_step,
    "fill_landing": landing_step, "check_pipeline_can_run": landing_step,
    "Steps": day_steps, "SUMMARY_MARKER": day_steps,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(cached_steps.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(cached_steps, name) is getattr(module, name), name
        obj = module.__dict__[name]
        if callable(obj):
            assert obj.__module__ == module.__name__, name
    assert issubclass(cached_steps.Steps, cached_steps.LandingSteps)
    assert issubclass(cached_steps.LandingSteps, cached_steps.StepsBase)


def _steps(tmp_path):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.orchestration.step_cache import StepCache

    cfg = load_config(overrides={"storage": {"artifacts": str(tmp_path / "artifacts")}})
    return cached_steps.Steps(cfg, None, StepCache(cfg.cache), echo=lambda line: None)


def test_a_patched_code_hash_and_reads_take_effect_in_the_steps(tmp_path, monkeypatch):
    real = steps_base.code_hash
    monkeypatch.setattr(steps_base, "code_hash",
                        lambda *m, **kw: real(*m, **kw) + ("-edited" if m == (cached_steps.MODULES["index"],) else ""))
    steps = _steps(tmp_path)
    assert steps.code("index").endswith("-edited") and not steps.code("cf").endswith("-edited")

    read = SimpleNamespace(reads={"actions": 0, "pins": 0})
    with pytest.raises(RuntimeError, match=r"step cf read \['pins'\], which its fingerprint does not cover: "
                                           r"add them to pinrec\.jobs\.orchestration\.steps_base\.READS\['cf'\]"):
        steps._check_reads("cf", read)
    monkeypatch.setitem(cached_steps.READS, "cf", ("actions", "pins"))  # the facade's READS is steps_base's dict
    steps._check_reads("cf", read)

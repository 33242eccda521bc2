"""Which version a PinSage retrain starts from, and why (no Spark: the commit metadata is a dict)."""
from __future__ import annotations

from dataclasses import asdict, replace

import torch

from pinrec.jobs.pinsage.pinsage_versions import (
    choose_warm_start,
    model_file,
    save_model,
)
from tests.support.graphs import train_config

FEATURES = ["category=art", "category=food", "age_days"]
VERSIONS = {"graph_edges": 3, "graph_pin_nodes": 3, "graph_board_nodes": 3}


def saved(tmp_path, version="pinsage-aaa", cfg=None):
    cfg = cfg or train_config()
    state = {"lin_in.weight": torch.ones(2, 3)}
    save_model(str(tmp_path), version, state, cfg, torch.tensor([5, 7]), FEATURES)
    return {"model_version": version, "input_versions": {**VERSIONS, "graph_edges": 2}, "train_config": asdict(cfg),
            "warm_start_from": None}


def test_warm_start_from_the_previous_version(tmp_path):
    cfg = train_config()
    meta = saved(tmp_path)
    assert model_file(str(tmp_path), "pinsage-aaa").is_file()
    warm = choose_warm_start(meta, str(tmp_path), cfg, VERSIONS, FEATURES)
    assert warm.from_version == "pinsage-aaa" and warm.reason == "warm start from pinsage-aaa"
    assert torch.equal(warm.state["lin_in.weight"], torch.ones(2, 3)) and warm.pin_ids.tolist() == [5, 7]


def test_a_rerun_on_the_same_inputs_starts_where_that_version_started(tmp_path):
    cfg = train_config()
    parent = saved(tmp_path, "pinsage-parent")
    meta = {**saved(tmp_path, "pinsage-child"), "input_versions": VERSIONS, "warm_start_from": "pinsage-parent"}
    warm = choose_warm_start(meta, str(tmp_path), cfg, VERSIONS, FEATURES)
    assert warm.from_version == "pinsage-parent"
    assert warm.reason == "warm start from pinsage-parent (a rerun on the same inputs starts where that version started)"
    cold_child = {**meta, "warm_start_from": None}
    assert choose_warm_start(cold_child, str(tmp_path), cfg, VERSIONS, FEATURES).reason == \
        "cold start: a rerun of pinsage-child on the same inputs, which started cold"
    assert parent["model_version"] == "pinsage-parent"
    # another config is no rerun: it starts from the newest version
    assert choose_warm_start(meta, str(tmp_path), replace(cfg, lr=0.5), VERSIONS, FEATURES).from_version == \
        "pinsage-child"


def test_cold_starts_say_why(tmp_path):
    cfg = train_config()
    meta = saved(tmp_path)
    cases = [
        ({}, str(tmp_path), cfg, FEATURES, "cold start: no previous version"),
        (meta, None, cfg, FEATURES, "cold start: no artifacts location keeps model versions"),
        (meta, str(tmp_path), replace(cfg, warm_start=False), FEATURES, "cold start: pinsage.warm_start is off"),
        ({**meta, "model_version": "pinsage-gone"}, str(tmp_path), cfg, FEATURES,
         f"cold start: no weights of pinsage-gone at {tmp_path}/pinsage/pinsage-gone/model.pt"),
        (meta, str(tmp_path), replace(cfg, out_channels=4), FEATURES,
         "cold start: pinsage-aaa has another architecture (previous, now): {'out_channels': (8, 4)}"),
        (meta, str(tmp_path), cfg, FEATURES[:2],
         "cold start: pinsage-aaa was trained on other pin features (3 vs 2 columns or another order)"),
    ]
    for previous, artifacts, c, names, reason in cases:
        warm = choose_warm_start(previous, artifacts, c, VERSIONS, names)
        assert (warm.from_version, warm.state, warm.reason) == (None, None, reason)

"""The training DAG's retrieval_settings step: the log it searches on, applying the choice, a skipped step."""
from __future__ import annotations

import pandas as pd
import pytest

from pinrec.jobs.pinsage.pinsage_settings import (
    TUNED,
    apply_settings,
    board_log,
    choose_settings,
    settings_file,
)
from tests.support.graphs import train_config


def edges() -> pd.DataFrame:
    ts = pd.to_datetime(["2026-01-05 10:00", "2026-01-05 11:00", "2026-01-06 09:00", "2026-01-07 08:00"], utc=True)
    return pd.DataFrame({"pin_id": [11, 12, 13, 11], "board_id": [7, 7, 8, 8], "saved_at": ts,
                         "split": ["train", "train", "train", "eval"]})


def test_board_log_keeps_the_training_edges_boards_as_users():
    log = board_log(edges())
    assert log["user_id"].tolist() == [7, 7, 8] and log["pin_id"].tolist() == [11, 12, 13]  # the eval edge is gone
    assert log["ts"].tolist() == edges()["saved_at"].tolist()[:3] and str(log["ts"].dt.tz) == "UTC"
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['split'\]"):
        board_log(edges().drop(columns="split"))
    with pytest.raises(ValueError, match="no 'train' edge"):
        board_log(edges().assign(split="eval"))


def test_apply_settings_changes_only_the_tuned_fields():
    cfg = train_config()
    chosen = {"positives": "next", "positive_window": 5, "history_half_life": 2.0, "id_embedding": True,
              "id_embedding_std": 0.1}
    assert set(chosen) == set(TUNED)
    tuned = apply_settings(cfg, chosen)
    assert (tuned.positives, tuned.positive_window, tuned.history_half_life, tuned.id_embedding,
            tuned.id_embedding_std) == ("next", 5, 2.0, True, 0.1)
    assert (tuned.epochs, tuned.lr, tuned.out_channels) == (cfg.epochs, cfg.lr, cfg.out_channels)
    assert apply_settings(cfg, {}) is cfg and apply_settings(cfg, None) is cfg
    with pytest.raises(ValueError, match=r"\['lr'\] are not PinSage settings the search chooses"):
        apply_settings(cfg, {"lr": 0.5})
    with pytest.raises(ValueError, match="positives"):  # the config validates the value
        apply_settings(cfg, {"positives": "random"})


def test_a_step_switched_off_reads_nothing(tmp_path):
    from pinrec.jobs.retrieval.config import RetrievalEvalConfig

    choice = choose_settings(None, str(tmp_path / "nowhere"), RetrievalEvalConfig(), train_config(), enabled=False,
                             artifacts=str(tmp_path))
    assert choice.settings == {} and choice.skipped == "retrieval_eval.tune_in_training is off"
    assert choice.render() == "retrieval settings: skipped (retrieval_eval.tune_in_training is off)"
    assert not (tmp_path / "retrieval_settings").exists()
    assert settings_file(str(tmp_path), 4).uri.endswith("retrieval_settings/graph_edges-v4.json")


def test_a_settings_file_reads_back_with_its_cache_stamp(tmp_path):
    import json

    from pinrec.jobs.pinsage.pinsage_settings import SettingsChoice, read_choice

    choice = SettingsChoice({"positives": "next", "positive_window": 5}, None, [{"setting": "a", "hr": 0.5}],
                            {"budget_cut": "1 of 3"}, {"graph_edges": 3, "graph_pin_nodes": 2}, "x.json", "run-1", 2.5)
    path = tmp_path / "graph_edges-v3.json"
    path.write_text(json.dumps({**choice.as_dict(), "cache": {"step": "retrieval_settings", "fingerprint": "abc"}}))
    assert read_choice(str(path)) == (choice, {"step": "retrieval_settings", "fingerprint": "abc"})
    path.write_text(json.dumps(choice.as_dict()))  # written outside the cache: no stamp, never reused
    assert read_choice(str(path)) == (choice, {})

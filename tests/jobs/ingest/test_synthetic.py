"""Tests of :mod:`pinrec.jobs.ingest.synthetic`: the landing files honour the contracts, injected faults and
duplicates are exactly what the summary says, and the outcomes follow the documented truth."""
from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.config import ConfigError, SyntheticConfig
from pinrec.jobs.ingest import (
    synthetic,
    synthetic_draw,
    synthetic_faults,
    synthetic_feed,
    synthetic_generate,
    synthetic_world,
)
from pinrec.jobs.ingest.landing import LandingSummary, list_partitions, partition_dir
from pinrec.jobs.ingest.synthetic import ACTION_FAULTS, generate, position_bias
from pinrec.schemas.catalog import (
    ACTION_TYPES,
    ACTIONS,
    DEVICES,
    IMPRESSIONS,
    MAX_POSITION,
    RAW_TABLES,
    SURFACES,
    TABLES,
)
from pinrec.schemas.tables import TableSpec

TINY = SyntheticConfig(users=150, pins=500, categories=6, latent_dim=8, boards_per_user=2, days=3,
                       impressions_per_day=3_000, session_length=10, fresh_pins_per_day=40, new_users_per_day=10,
                       fault_rate=0.01, duplicate_rate=0.01)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, LandingSummary]:
    landing = tmp_path_factory.mktemp("landing")
    return landing, generate(TINY, landing, seed=11)


@pytest.fixture(scope="module")
def busy_world(tmp_path_factory) -> Path:
    """Fault-free, 2 days x 100k impressions: enough events for rates and rare delays."""
    landing = tmp_path_factory.mktemp("busy")
    cfg = dataclasses.replace(TINY, users=2_000, pins=3_000, categories=12, latent_dim=16, days=2,
                              impressions_per_day=100_000, session_length=20, fault_rate=0.0, duplicate_rate=0.0)
    generate(cfg, landing, seed=1)
    return landing


def read_table(landing: Path, name: str) -> pd.DataFrame:
    """Every landed row of ``name`` with its partition date as ``dt`` (timestamps parsed)."""
    frames = [pd.read_json(f, lines=True, dtype=False, convert_dates=False).assign(dt=day)
              for day in list_partitions(landing, name)
              for f in sorted(Path(partition_dir(landing, name, day).path).glob("*.jsonl")) if f.stat().st_size]
    out = pd.concat(frames, ignore_index=True)
    for col in TABLES[name].columns:
        if col.dtype == "timestamp":
            out[col.name] = pd.to_datetime(out[col.name], utc=True)
    return out


def impression_faults(impressions: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per fault kind, recounted from landed impressions."""
    return pd.DataFrame({
        "null_user_id": impressions["user_id"].isna(),
        "position_out_of_range": ~impressions["position"].between(1, MAX_POSITION),
        "unknown_surface": ~impressions["surface"].isin(SURFACES),
        "future_ts": impressions["ts"] > pd.Timestamp("2090-01-01", tz="UTC")})


def action_faults(actions: pd.DataFrame, impressions: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per fault kind, recounted from landed actions."""
    return pd.DataFrame({
        "save_without_board": (actions["type"] == "save") & actions["board_id"].isna(),
        "unknown_impression": ~actions["impression_id"].isin(impressions["event_id"]),
        "unknown_action_type": ~actions["type"].isin(ACTION_TYPES)})


def violations(rows: pd.DataFrame, spec: TableSpec) -> pd.Series:
    """True for rows breaking a per-column check of ``spec`` (nullability, range, set, pattern)."""
    bad = pd.Series(False, index=rows.index)
    for c in spec.columns:
        value, present = rows[c.name], rows[c.name].notna()
        bad |= ~present if not c.nullable else False
        if c.min_value is not None:
            bad |= present & (value < c.min_value)
        if c.max_value is not None:
            bad |= present & (value > c.max_value)
        if c.allowed is not None:
            bad |= present & ~value.isin(c.allowed)
        if c.pattern is not None:
            bad |= present & ~value.astype(str).str.fullmatch(c.pattern.strip("^$"))
    return bad


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    cfg = dataclasses.replace(TINY, days=2)
    generate(cfg, tmp_path / "a", seed=3)
    generate(cfg, tmp_path / "b", seed=3)
    generate(cfg, tmp_path / "c", seed=4)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    for name in ("impressions/dt=2026-01-05/part-00000.jsonl", "pins/dt=2026-01-05/part-00000.jsonl",
                 "_truth/pins.parquet"):
        assert a[name] != c[name]


def test_part_files_hold_the_same_lines(tmp_path, monkeypatch):
    cfg = dataclasses.replace(TINY, days=1)
    generate(cfg, tmp_path / "one", seed=5)
    monkeypatch.setattr(synthetic_faults, "_PART_ROWS", 700)  # where _land reads it
    generate(cfg, tmp_path / "many", seed=5)
    one = (tmp_path / "one/impressions/dt=2026-01-05/part-00000.jsonl").read_text()
    parts = sorted((tmp_path / "many/impressions/dt=2026-01-05").glob("part-*.jsonl"))
    assert len(parts) == 5  # 3000 clean + 30 faulty + 30 duplicate lines
    assert "".join(p.read_text() for p in parts) == one


def test_files_follow_the_contracts(world):
    landing, summary = world
    for spec in RAW_TABLES:
        assert list_partitions(landing, spec.name) == summary.days == [TINY.start_date + dt.timedelta(days=i)
                                                                       for i in range(TINY.days)]
        for day in summary.days:
            (path,) = Path(partition_dir(landing, spec.name, day).path).glob("*.jsonl")
            frame = pd.read_json(path, lines=True)
            assert list(frame.columns) == list(spec.column_names), spec.name
            assert len(frame) == summary.rows[spec.name][day] > 0
        if spec.kind == "event":  # dt is the date of the event, apart from the injected future ts
            rows = read_table(landing, spec.name)
            outside = rows[spec.event_ts].dt.date != rows["dt"]
            assert outside.sum() == summary.faults.get(spec.name, {}).get("future_ts", 0)


def test_only_injected_faults_break_column_checks(world):
    landing, _ = world
    tables = {spec.name: read_table(landing, spec.name) for spec in RAW_TABLES}
    imp_kinds = impression_faults(tables["impressions"])
    act_kinds = action_faults(tables["actions"], tables["impressions"])
    faulty = {"impressions": imp_kinds.any(axis=1), "actions": act_kinds.any(axis=1)}
    for spec in RAW_TABLES:
        rows = tables[spec.name]
        clean = rows[~faulty[spec.name]] if spec.name in faulty else rows
        assert not violations(clean, spec).any(), spec.name
    column_faults = imp_kinds[["null_user_id", "position_out_of_range", "unknown_surface"]].any(axis=1)
    assert (violations(tables["impressions"], IMPRESSIONS) == column_faults).all()
    assert (violations(tables["actions"], ACTIONS) == act_kinds["unknown_action_type"]).all()


def test_keys_unique_apart_from_counted_exact_duplicates(world):
    landing, summary = world
    for name in ("users", "pins", "boards", "pin_board_edges"):
        spec = TABLES[name]
        assert not read_table(landing, name).duplicated(list(spec.primary_key)).any(), name
    assert summary.duplicates["impressions"] == 30 * TINY.days
    for name in ("impressions", "actions"):
        rows = read_table(landing, name).drop(columns="dt")
        assert summary.duplicates[name] > 0
        assert rows.duplicated("event_id").sum() == summary.duplicates[name]
        assert rows.astype(str).duplicated().sum() == summary.duplicates[name]  # exact copies


def test_fault_counts_match_the_files(world):
    landing, summary = world
    impressions, actions = read_table(landing, "impressions"), read_table(landing, "actions")
    imp, act = impression_faults(impressions), action_faults(actions, impressions)
    for kinds, table in ((imp, "impressions"), (act, "actions")):
        assert kinds.sum(axis=1).max() == 1  # one fault kind per faulty row
        assert kinds.sum().to_dict() == summary.faults[table]
    # 30 faulty impressions a day (1% of 3000), kinds in turn: 8, 8, 7, 7 a day over 3 days.
    assert summary.faults["impressions"] == {"null_user_id": 24, "position_out_of_range": 24,
                                             "unknown_surface": 21, "future_ts": 21}
    assert set(summary.faults["actions"]) == set(ACTION_FAULTS) and min(summary.faults["actions"].values()) > 0


def test_references_hold_except_injected_faults(world):
    landing, _ = world
    impressions, actions = read_table(landing, "impressions"), read_table(landing, "actions")
    users, pins, boards = (read_table(landing, n) for n in ("users", "pins", "boards"))
    faulty_ids = set(impressions.loc[impression_faults(impressions).any(axis=1), "event_id"])
    assert not faulty_ids & set(actions["impression_id"])  # quarantining an impression never cascades
    clean = actions[~action_faults(actions, impressions).any(axis=1)]
    assert clean["impression_id"].isin(impressions["event_id"]).all()
    joined = clean.merge(impressions.drop_duplicates("event_id"), left_on="impression_id", right_on="event_id",
                         suffixes=("", "_imp"))
    assert len(joined) == len(clean)
    assert (joined[["user_id", "pin_id", "session_id"]].to_numpy() ==
            joined[["user_id_imp", "pin_id_imp", "session_id_imp"]].to_numpy()).all()
    assert (joined["ts"] > joined["ts_imp"]).all()
    saves = clean[clean["type"] == "save"].merge(boards, on="board_id", suffixes=("", "_board"))
    assert len(saves) == (clean["type"] == "save").sum() > 0
    assert (saves["owner_user_id"] == saves["user_id"]).all() and (saves["created_at"] < saves["ts"]).all()
    assert clean.loc[clean["type"] != "save", "board_id"].isna().all()
    assert impressions["user_id"].dropna().isin(users["user_id"]).all()
    assert impressions["pin_id"].isin(pins["pin_id"]).all() and boards["owner_user_id"].isin(users["user_id"]).all()
    edges = read_table(landing, "pin_board_edges")
    first = clean[clean["type"] == "save"].sort_values("ts").drop_duplicates(["pin_id", "board_id"])
    assert sorted(zip(edges["pin_id"], edges["board_id"], edges["saved_at"], strict=True)) == \
        sorted(zip(first["pin_id"], first["board_id"].astype(int), first["ts"], strict=True))


def test_fresh_rows_arrive_daily_and_appear_only_after_creation(world):
    landing, _ = world
    pins, users = read_table(landing, "pins"), read_table(landing, "users")
    impressions = read_table(landing, "impressions")
    start = pd.Timestamp(TINY.start_date, tz="UTC")
    for frame, initial, fresh in ((pins, TINY.pins, TINY.fresh_pins_per_day),
                                  (users, TINY.users, TINY.new_users_per_day)):
        assert (frame.groupby("dt").size().to_numpy() == [initial + fresh] + [fresh] * (TINY.days - 1)).all()
        arrived_later = frame["dt"] > TINY.start_date
        assert (frame.loc[arrived_later, "created_at"].dt.date == frame.loc[arrived_later, "dt"]).all()
        assert ((frame["created_at"] < start) == (frame["created_at"].dt.date < frame["dt"])).all()
    shown = impressions.merge(pins, on="pin_id", suffixes=("", "_pin"))
    assert (shown["ts"] > shown["created_at"]).all()
    assert (shown["dt_pin"] > TINY.start_date).any()  # fresh pins are shown
    assert not shown["nsfw"].any() and pins["nsfw"].any()
    by_user = impressions.dropna(subset=["user_id"]).merge(users, on="user_id", suffixes=("", "_user"))
    assert (by_user["ts"] > by_user["created_at"]).all() and (by_user["dt_user"] > TINY.start_date).any()
    assert (by_user["country"] == by_user["country_user"]).all()


def test_sessions_are_feeds_of_one_user(world):
    landing, _ = world
    impressions = read_table(landing, "impressions").drop_duplicates("event_id")
    impressions = impressions[~impression_faults(impressions).any(axis=1)].sort_values(["session_id", "position"])
    sessions = impressions.groupby("session_id")
    assert (sessions[["user_id", "device", "surface", "country", "dt"]].nunique() == 1).all().all()
    assert (sessions["position"].agg(lambda p: list(p) == list(range(1, len(p) + 1)))).all()
    gaps = sessions["ts"].diff().dropna().dt.total_seconds()
    assert gaps.between(1, 6).all()
    assert (sessions.size() == TINY.session_length).all()
    assert (impressions["surface"] == "home_feed").mean() > 0.5
    assert set(impressions["device"]) <= set(DEVICES)


def test_some_saves_land_on_the_next_day(busy_world):
    actions = read_table(busy_world, "actions")
    saves = actions[actions["type"] == "save"]
    impression_day = pd.to_datetime(saves["impression_id"].str.split("-").str[1]).dt.date
    next_day = saves["dt"] == impression_day + dt.timedelta(days=1)
    assert 0.02 < next_day[impression_day == TINY.start_date].mean() < 0.10
    assert (next_day | (saves["dt"] == impression_day)).all()


def test_truth_files(world):
    landing, _ = world
    truth = landing / "_truth"
    constants = json.loads((truth / "world.json").read_text())
    assert constants["seed"] == 11 and constants["config"]["start_date"] == "2026-01-05"
    assert constants["position_bias_exponent"] == synthetic.POSITION_BIAS_EXPONENT
    users, pins = pd.read_parquet(truth / "users.parquet"), pd.read_parquet(truth / "pins.parquet")
    u = np.stack(users["latent"].to_numpy())
    p = np.stack(pins["latent"].to_numpy())
    assert u.shape == (TINY.users + TINY.days * TINY.new_users_per_day, TINY.latent_dim)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1, atol=1e-5)
    landed_pins = read_table(landing, "pins")
    assert (landed_pins["category"].to_numpy() == pins["category"].to_numpy()).all()
    has_embedding = landed_pins["content_embedding"].notna()
    assert 0.85 < has_embedding.mean() < 1
    content = np.stack(landed_pins.loc[has_embedding, "content_embedding"].to_numpy())
    cosine = np.einsum("nd,nd->n", content, p[has_embedding]) / np.linalg.norm(content, axis=1)
    assert content.shape[1] == TINY.latent_dim and np.median(cosine) > 0.8  # a noisy copy of the latent

    imp = pd.read_parquet(truth / "impressions")
    landed = read_table(landing, "impressions")
    clean = landed[~impression_faults(landed).any(axis=1)].drop_duplicates("event_id")
    assert sorted(imp["event_id"]) == sorted(clean["event_id"])
    uid = users.set_index("user_id").index.get_indexer(imp["user_id"])
    pid = pins.set_index("pin_id").index.get_indexer(imp["pin_id"])
    np.testing.assert_allclose(imp["relevance"], np.einsum("nd,nd->n", u[uid], p[pid]), atol=1e-5)
    np.testing.assert_allclose(imp["exam_prob"], position_bias(imp["position"]), rtol=1e-6)
    a, b = constants["closeup_a"], constants["closeup_b"]
    np.testing.assert_allclose(imp["p_closeup"], 1 / (1 + np.exp(-(a * imp["relevance"] + b))), rtol=1e-5)
    assert not (imp["save"] & ~imp["closeup"]).any() and not (imp["click"] & ~imp["closeup"]).any()


def test_closeup_rate_per_position_matches_truth(busy_world):
    truth = pd.read_parquet(busy_world / "_truth/impressions/dt=2026-01-05")  # day 0: all closeups landed
    actions = read_table(busy_world, "actions")
    closeups = set(actions.loc[actions["type"] == "closeup", "impression_id"])
    truth["landed"] = truth["event_id"].isin(closeups)
    assert (truth["landed"] == truth["closeup"]).all()
    q = truth["exam_prob"].astype(float) * truth["p_closeup"]
    stats = truth.assign(q=q, var=q * (1 - q)).groupby("position").agg(
        n=("q", "size"), rate=("landed", "mean"), expected=("q", "mean"), var=("var", "sum"))
    se = np.sqrt(stats["var"]) / stats["n"]
    assert ((stats["rate"] - stats["expected"]).abs() < 4 * se).all(), stats
    assert stats["rate"].iloc[0] > 2 * stats["rate"].iloc[-1]  # position bias is visible
    assert 0.05 < truth["landed"].mean() < 0.10  # the documented base closeup rate


def test_fault_free_world_has_no_faults(tmp_path):
    cfg = dataclasses.replace(TINY, days=2, fault_rate=0.0, duplicate_rate=0.0)
    summary = generate(cfg, tmp_path, seed=2)
    assert summary.duplicates == {"impressions": 0, "actions": 0}
    assert all(v == 0 for kinds in summary.faults.values() for v in kinds.values())
    impressions, actions = read_table(tmp_path, "impressions"), read_table(tmp_path, "actions")
    assert not impression_faults(impressions).to_numpy().any()
    assert not action_faults(actions, impressions).to_numpy().any()
    assert summary.total("impressions") == cfg.days * cfg.impressions_per_day


def test_feed_order_popularity_puts_popular_pins_first_and_leaves_random_worlds_unchanged(tmp_path):
    """``feed_order="popularity"`` only permutes each session's pins (same users, timestamps,
    positions), ordered by noisy log popularity; the default draws exactly as before."""
    cfg = dataclasses.replace(TINY, days=1, fault_rate=0.0, duplicate_rate=0.0)
    cfg_pop = dataclasses.replace(cfg, feed_order="popularity")
    world = synthetic._build_world(cfg, np.random.default_rng([4, 0]))
    pool = synthetic._PinPool.of(world, cfg.categories)
    frames = {c.feed_order: synthetic._impressions(world, c, pool, 0, np.random.default_rng([4, 2, 0]))
              for c in (cfg, cfg_pop)}
    random_frame, random_truth = frames["random"]
    pop_frame, pop_truth = frames["popularity"]
    for column in ("event_id", "user_id", "ts", "session_id", "position"):
        assert (random_frame[column] == pop_frame[column]).all()
    key = ["session_id", "pin_id"]
    assert (random_frame[key].sort_values(key).to_numpy() == pop_frame[key].sort_values(key).to_numpy()).all()
    log_pop = {order: np.log(world.pin_popularity[f["pin_id"].to_numpy() - synthetic.PIN_ID_BASE])
               for order, (f, _) in frames.items()}
    corr = {order: np.corrcoef(f["position"], log_pop[order])[0, 1] for order, (f, _) in frames.items()}
    assert corr["popularity"] < -0.5 and abs(corr["random"]) < 0.05, corr
    np.testing.assert_allclose(pop_truth["relevance"], np.einsum(  # relevance moved with its pin
        "nd,nd->n", world.user_latent[pop_frame["user_id"] - synthetic.USER_ID_BASE],
        world.pin_latent[pop_frame["pin_id"] - synthetic.PIN_ID_BASE]), atol=1e-5)
    assert not np.array_equal(random_truth["relevance"], pop_truth["relevance"])


def test_simulate_draws_what_generate_writes(world):
    landing, _ = world
    sim = synthetic.simulate(TINY, seed=11)
    assert len(sim.days) == TINY.days
    for d, truth in enumerate(sim.days):
        day = TINY.start_date + dt.timedelta(days=d)
        written = pd.read_parquet(landing / "_truth" / "impressions" / f"dt={day.isoformat()}")
        for column in written.columns:
            np.testing.assert_array_equal(written[column].to_numpy(), truth[column], err_msg=column)
        np.testing.assert_array_equal(truth["pin"], truth["pin_id"] - synthetic.PIN_ID_BASE)
        assert (np.diff(truth["session"]) >= 0).all() and truth["session"].max() == TINY.impressions_per_day // TINY.session_length - 1
    pins = read_table(landing, "pins").sort_values("pin_id")
    assert (pins["content_embedding"].notna().to_numpy() == sim.has_content).all()
    landed = np.stack(pins.loc[pins["content_embedding"].notna(), "content_embedding"].to_numpy())
    np.testing.assert_allclose(sim.content[sim.has_content], landed, rtol=1e-6)
    assert (sim.content[~sim.has_content] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(sim.user_latent, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("change", [{"session_length": MAX_POSITION + 1}, {"users": 0}, {"fault_rate": 1.5},
                                    {"feed_order": "relevance"}])
def test_invalid_config_is_refused(tmp_path, change):
    with pytest.raises(ConfigError, match=r"^synthetic\.\w+ must be "):  # the section's own bounds
        generate(dataclasses.replace(TINY, **change), tmp_path, seed=0)


HOME = {name: synthetic_world for name in (
    "BOARD_ID_BASE", "CANDIDATES", "CATEGORY_TEMPERATURE", "CLICK_GIVEN_CLOSEUP", "CLOSEUP_A", "CLOSEUP_B",
    "CONTENT_NOISE", "COUNTRIES", "COUNTRY_P", "DEVICE_P", "FEED_ORDER_NOISE", "GENDER_P", "INTEREST_SHARE",
    "NO_EMBEDDING_SHARE", "NSFW_SHARE", "OCCUPATIONS", "PIN_ID_BASE", "PIN_NOISE", "POSITION_BIAS_EXPONENT",
    "SAVE_C", "SAVE_D", "SAVE_DELAY_MEDIAN_S", "SAVE_DELAY_SIGMA", "SURFACE_P", "USER_ID_BASE", "USER_NOISE",
    "_build_world")} | {
    "ACTION_FAULTS": synthetic_faults, "IMPRESSION_FAULTS": synthetic_faults,
    "position_bias": synthetic_feed, "_PinPool": synthetic_feed, "_impressions": synthetic_feed,
    "Simulation": synthetic_draw, "simulate": synthetic_draw, "generate": synthetic_generate,
}


def top_level_assignments(module) -> set[str]:
    """Names a module assigns at its top level (where a constant, which has no ``__module__``, is defined)."""
    tree = ast.parse(Path(module.__file__).read_text())
    return {t.id for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name)}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(synthetic.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(synthetic, name) is getattr(module, name), name
        value = module.__dict__[name]
        if isinstance(value, type) or callable(value):
            assert value.__module__ == module.__name__, name
        else:
            assert name in top_level_assignments(module), name

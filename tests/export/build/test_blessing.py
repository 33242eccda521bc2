import dataclasses

import pytest

from pinrec.export.build.blessing import BlessingConfig, evaluate
from pinrec.schemas.manifest import Metrics


def m(recall=0.30, p99=10.0, auc=None, ece=None, k=100) -> Metrics:
    auc = auc if auc is not None else {"closeup": 0.70, "save": 0.65}
    ece = ece if ece is not None else {t: 0.02 for t in auc}
    return Metrics(k=k, recall_at_k=recall, latency_p50_ms=p99 / 2, latency_p99_ms=p99, auc=auc, calibration_error=ece)


CFG = BlessingConfig(max_recall_drop=0.01, max_latency_increase=0.2, max_auc_drop=0.005,
                     max_calibration_increase=0.01, min_recall=0.1, min_auc=0.55, max_calibration_error=0.1,
                     max_latency_p99_ms=50.0)


def test_first_version_is_judged_on_the_floors_only():
    ok = evaluate(m(), None, CFG)
    assert ok.blessed and ok.reasons == () and ok.baseline_version is None
    bad = evaluate(m(recall=0.05, p99=60.0, auc={"closeup": 0.5}, ece={"closeup": 0.2}), None, CFG)
    assert not bad.blessed
    assert bad.reasons == ("recall@100 0.0500 < minimum 0.1000", "latency p99 60.00 ms > maximum 50.00 ms",
                           "auc[closeup] 0.5000 < minimum 0.5500", "calibration_error[closeup] 0.2000 > maximum 0.1000")


def test_within_tolerances_of_the_baseline_is_blessed():
    cand = m(recall=0.291, p99=11.9, auc={"closeup": 0.696, "save": 0.70}, ece={"closeup": 0.029, "save": 0.0})
    v = evaluate(cand, m(), CFG, baseline_version="v1")
    assert v.blessed and v.baseline_version == "v1"


def test_each_regression_is_a_reason():
    cand = m(recall=0.28, p99=12.5, auc={"closeup": 0.69, "save": 0.65}, ece={"closeup": 0.02, "save": 0.031})
    v = evaluate(cand, m(), CFG, baseline_version="v1")
    assert not v.blessed
    assert v.reasons == ("recall@100 0.2800 < v1 0.3000 - 0.0100", "latency p99 12.50 ms > v1 10.00 ms x 1.20",
                         "auc[closeup] 0.6900 < v1 0.7000 - 0.0050",
                         "calibration_error[save] 0.0310 > v1 0.0200 + 0.0100")


def test_missing_task_and_different_k_fail():
    v = evaluate(m(k=50, auc={"closeup": 0.7}), m(), CFG, baseline_version="v1")
    assert v.reasons == ("recall@50 is not comparable with v1's recall@100",
                         "task 'save' of v1 has no metrics in the candidate")


def test_config_validation():
    with pytest.raises(ValueError, match="max_recall_drop must be >= 0"):
        BlessingConfig(max_recall_drop=-0.1)
    with pytest.raises(ValueError, match="min_auc must be in"):
        BlessingConfig(min_auc=1.5)
    with pytest.raises(ValueError, match="max_latency_increase"):
        BlessingConfig(max_latency_increase=float("nan"))


def test_drift_beyond_the_thresholds_is_a_reason():
    gate = BlessingConfig(max_score_psi=0.2, max_feature_drift=0.5)
    drifted = dataclasses.replace(m(), drift={"score_psi.closeup": 0.31, "score_psi.save": 0.05,
                                              "feature_drift.user__saves_7d": 0.8, "feature_drift.pin__age_days": 0.5,
                                              "label_rate_shift.closeup": 0.9})
    v = evaluate(drifted, m(), gate, baseline_version="v1")
    assert v.reasons == ("feature drift[user__saves_7d] 0.8000 > maximum 0.5000",
                         "score PSI[closeup] 0.3100 > maximum 0.2000")
    assert evaluate(dataclasses.replace(m(), drift={"score_psi.closeup": 0.2}), None, gate).blessed
    assert evaluate(m(), None, gate).blessed  # no drift metrics: the checks are skipped
    with pytest.raises(ValueError, match="max_score_psi must be >= 0"):
        BlessingConfig(max_score_psi=-1.0)


def test_a_null_rate_shift_beyond_its_own_limit_is_a_reason():
    """A feature gone fully null (shift ~1) fails at the default limit; feature_drift stays the mean/std shift."""
    shifted = dataclasses.replace(m(), drift={"null_rate_shift.user__saves_7d": 0.98, "null_rate_shift.pin__age_days": 0.5,
                                              "feature_drift.pin__age_days": 0.9})
    v = evaluate(shifted, None, BlessingConfig())
    assert BlessingConfig().max_null_rate_shift == 0.5
    assert v.reasons == ("null-rate shift[user__saves_7d] 0.9800 > maximum 0.5000",)
    assert evaluate(shifted, None, BlessingConfig(max_null_rate_shift=1.0)).blessed
    with pytest.raises(ValueError, match="max_null_rate_shift"):
        BlessingConfig(max_null_rate_shift=1.5)


def test_categorical_drift_beyond_its_limits_is_a_reason_and_none_turns_it_off():
    """A category mix shifted past PSI 0.25, and a day a third in categories the window never had (limits set)."""
    drifted = dataclasses.replace(m(), drift={"category_psi.surface": 0.31, "category_psi.device": 0.25,
                                              "unseen_category_share.category": 0.35,
                                              "unseen_category_share.surface": 0.0})
    on = BlessingConfig(max_category_psi=0.25, max_unseen_category_share=0.2)
    v = evaluate(drifted, m(), on, baseline_version="v1")
    assert v.reasons == ("category PSI[surface] 0.3100 > maximum 0.2500",
                         "unseen category share[category] 0.3500 > maximum 0.2000")
    off = BlessingConfig(max_category_psi=None, max_unseen_category_share=None)
    assert evaluate(drifted, m(), off, baseline_version="v1").blessed  # no noise measured: the factor has nothing
    # the default: 0.25, raised by the noise where measured (tests/jobs/monitoring/test_category_noise.py)
    assert evaluate(drifted, m(), BlessingConfig(), baseline_version="v1").reasons == (
        "category PSI[surface] 0.3100 > maximum 0.2500",)
    assert evaluate(drifted, None, BlessingConfig(max_category_psi=0.5, max_unseen_category_share=0.4)).blessed
    with pytest.raises(ValueError, match="max_category_psi must be >= 0"):
        BlessingConfig(max_category_psi=-0.1)


def test_a_drifted_candidate_is_stored_but_not_published(tmp_path, candidate):
    from pinrec.export.build.publish import publish
    from pinrec.export.serving.store import Store, read_channel
    from tests.support.bundles import LINEAGE, T0, metrics

    store = Store(str(tmp_path / "store"))
    files, _, _ = candidate(0)
    first = publish(store, "homefeed", files, metrics(), LINEAGE, version="v1", now=T0)
    assert first.promoted
    drifted = dataclasses.replace(m(), drift={"score_psi.closeup": 0.4, "feature_drift.user__saves_7d": 0.1})
    files2, _, _ = candidate(1)
    res = publish(store, "homefeed", files2, drifted, LINEAGE, version="v2", now=T0,
                  blessing=BlessingConfig(max_score_psi=0.25))
    assert not res.promoted and read_channel(store, "homefeed", "prod").version == "v1"
    assert res.manifest.blessing.reasons == ("score PSI[closeup] 0.4000 > maximum 0.2500",)
    assert res.manifest.metrics.drift == {"score_psi.closeup": 0.4, "feature_drift.user__saves_7d": 0.1}


def test_sub_millisecond_latency_noise_is_not_a_regression():
    from pinrec.export.build.blessing import BlessingConfig, evaluate
    from pinrec.schemas.manifest import Metrics

    def m(p99):
        return Metrics(k=10, recall_at_k=1.0, latency_p50_ms=p99 / 2, latency_p99_ms=p99,
                       auc={"save": 0.7}, calibration_error={"save": 0.01})

    cfg = BlessingConfig()
    assert evaluate(m(0.09), m(0.05), cfg).blessed  # +80 % but +0.04 ms: within the 0.5 ms slack
    assert not evaluate(m(0.60), m(0.05), cfg).blessed
    assert not evaluate(m(13.0), m(10.0), cfg).blessed  # +30 % of 10 ms: the relative rule decides


FUNNEL = {"candidates.merged.recall@500.saves": 0.40, "candidates.ann.recall@500.saves": 0.30, "served.hr@50": 0.50,
          "served.ndcg@50": 0.20, "served.cosine": 0.30, "served.category_entropy": 2.0, "served.share.ann": 0.6}
FUNNEL_CFG = dataclasses.replace(CFG, max_funnel_drop=0.05, max_cosine_increase=0.05, max_entropy_drop=0.25)


def test_the_funnel_is_compared_with_the_champions():
    ok = {**FUNNEL, "candidates.merged.recall@500.saves": 0.36, "served.cosine": 0.34, "served.category_entropy": 1.8,
          "candidates.ann.recall@500.saves": 0.0, "served.share.ann": 0.1}  # per channel, shares: not gated
    v = evaluate(dataclasses.replace(m(), funnel=ok), dataclasses.replace(m(), funnel=FUNNEL), FUNNEL_CFG, "v1")
    assert v.blessed and v.notes == ()
    worse = {**FUNNEL, "candidates.merged.recall@500.saves": 0.34, "served.hr@50": 0.44, "served.cosine": 0.36,
             "served.category_entropy": 1.7}
    v = evaluate(dataclasses.replace(m(), funnel=worse), dataclasses.replace(m(), funnel=FUNNEL), FUNNEL_CFG, "v1")
    assert v.reasons == ("funnel candidates.merged.recall@500.saves 0.3400 < v1 0.4000 - 0.0500",
                         "funnel served.category_entropy 1.7000 < v1 2.0000 - 0.2500",
                         "funnel served.cosine 0.3600 > v1 0.3000 + 0.0500",
                         "funnel served.hr@50 0.4400 < v1 0.5000 - 0.0500")


def test_a_funnel_number_missing_on_either_side_is_not_compared_and_said():
    cand = {k: v for k, v in FUNNEL.items() if k != "served.ndcg@50"} | {"served.hr@10": 0.1}
    v = evaluate(dataclasses.replace(m(), funnel=cand), dataclasses.replace(m(), funnel=FUNNEL), FUNNEL_CFG, "v1")
    assert v.blessed and v.notes == ("funnel served.hr@10 not compared: only the candidate has it",
                                     "funnel served.ndcg@50 not compared: only the v1 has it")
    v = evaluate(dataclasses.replace(m(), funnel=FUNNEL), m(), FUNNEL_CFG, "v1")
    assert v.blessed and v.notes == ("funnel not compared: v1 has no funnel metrics",)
    v = evaluate(m(), dataclasses.replace(m(), funnel=FUNNEL), FUNNEL_CFG, "v1")
    assert v.blessed and v.notes == ("funnel not compared: the candidate has no funnel metrics",)
    assert evaluate(m(), m(), FUNNEL_CFG, "v1").notes == ()  # neither replayed: nothing to say
    assert evaluate(dataclasses.replace(m(), funnel=FUNNEL), None, FUNNEL_CFG).notes == ()  # first version


def test_embedding_stability_below_the_floor_is_a_reason():
    moved = dataclasses.replace(m(), stability={"overlap_at_10": 0.12, "procrustes_cosine": 0.4})
    gate = BlessingConfig(min_embedding_overlap=0.3)
    verdict = evaluate(moved, None, gate)
    assert not verdict.blessed and verdict.reasons == (
        ("embedding stability: overlap_at_10 0.1200 < minimum 0.3000 (the PinSage version moved too far from the "
        "previous one)"),)
    assert evaluate(dataclasses.replace(moved, stability={"overlap_at_10": 0.3}), None, gate).blessed
    assert evaluate(dataclasses.replace(moved, stability={}), None, gate).blessed  # a first version: nothing to compare
    # the default floor (docs/pinsage.md): below cold restarts (>= 0.139 measured), above shuffled vectors (<= 0.010)
    assert evaluate(moved, None, BlessingConfig()).blessed
    forgot = evaluate(dataclasses.replace(moved, stability={"overlap_at_10": 0.01}), None, BlessingConfig())
    assert forgot.reasons == (("embedding stability: overlap_at_10 0.0100 < minimum 0.0500 (the PinSage version "
                               "moved too far from the previous one)"),)
    with pytest.raises(ValueError, match="min_embedding_overlap"):
        BlessingConfig(min_embedding_overlap=1.5)
    # a rerun of a rejected version: 1.0 against itself, but far from the version serving
    rerun = evaluate(dataclasses.replace(moved, stability={"overlap_at_10": 1.0, "champion_overlap_at_10": 0.01}),
                     None, BlessingConfig())
    assert rerun.reasons == (("embedding stability: champion_overlap_at_10 0.0100 < minimum 0.0500 (the PinSage "
                              "version moved too far from the one serving)"),)


def test_stability_values_must_be_finite():
    from pinrec.schemas.manifest import ManifestError

    with pytest.raises(ManifestError, match=r"metrics.stability values must be finite"):
        dataclasses.replace(m(), stability={"overlap_at_10": float("nan")})

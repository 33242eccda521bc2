"""The landing step: the configured source written into the landing zone, checked for a pipeline that can
train on it, and cached by a marker beside it (:class:`LandingSteps`)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

from pinrec.jobs.config import PinrecConfig
from pinrec.jobs.features.holdout import holdout_days
from pinrec.jobs.io.fingerprint import code_hash, file_digest, fingerprint
from pinrec.jobs.io.lake import as_location

from .step_cache import Cached
from .steps_base import StepsBase

LANDING_MARKER = "_pinrec_landing.json"


def landing_dataset(cfg: PinrecConfig):
    """``cfg.dataset`` as the pipeline lands it: ``negative_impressions`` null becomes 1 when the ranker
    learns ``closeup`` (a landed log has a closeup on every interaction: without impressions nobody
    engaged with, that task would have one label value); otherwise it stays null, which the landing
    resolves from the data (1 for a log whose every interaction is a save, else 0)."""
    ds = cfg.dataset
    if ds.negative_impressions is None and "closeup" in cfg.ranker.tasks:
        return dataclasses.replace(ds, negative_impressions=1)
    return ds


def fill_landing(cfg: PinrecConfig):
    """Write the configured source into the landing zone (no cache: :meth:`Steps.landing` is the cached step)."""
    if cfg.dataset.kind == "synthetic":
        from pinrec.jobs.ingest.synthetic import generate

        return generate(cfg.synthetic, cfg.storage.location("landing"), seed=cfg.seed)
    from pinrec.jobs.ingest.log_reader import land_configured

    summary = land_configured(landing_dataset(cfg), cfg.storage.location("landing"))
    check_pipeline_can_run(summary, cfg)
    return summary


def check_pipeline_can_run(summary, cfg: PinrecConfig) -> None:
    """Raise a ValueError right after landing a dataset (not after an hour of steps) when the pipeline
    cannot train on it: a ranker task with one label value, every interaction on one day (the
    graph's train/eval split and the training set's windows need days), or fewer days with
    interactions than the training set's validation and test days leave one to train on. A landed log has an
    impression with a closeup per interaction, a save where its rating reaches the threshold, and
    ``dataset.negative_impressions`` impressions without either per interaction (``summary.labels``)."""
    impressions, closeups, saves = (summary.labels.get(k, 0) for k in ("impressions", "closeup", "save"))
    constant = {}
    if closeups >= impressions:
        constant["closeup"] = ("every landed impression has a closeup (no sampled negative impressions: "
                               "dataset.negative_impressions=0, or no pin left to draw)")
    if saves <= 0 or saves >= impressions:
        constant["save"] = (f"{'none' if saves <= 0 else 'every one'} of the {impressions:,} impressions is a save "
                            f"(saves: rating >= dataset.save_threshold; a log without ratings makes every "
                            f"interaction a save)")
    if bad := [task for task in cfg.ranker.tasks if task in constant]:
        raise ValueError(f"dataset {cfg.dataset.path}: the ranker's task(s) {bad} would have one label value: "
                         f"{'; '.join(constant[t] for t in bad)}. Set ranker.tasks to tasks with both labels "
                         "(and dataset.rating_column / save_threshold), or dataset.negative_impressions >= 1 to "
                         "sample impressions nobody engaged with. `pinrec eval-retrieval` evaluates retrieval "
                         "without them.")
    days = len(summary.rows.get("impressions", {}))
    if summary.partition == "day" and days < 2:
        raise ValueError(f"dataset {cfg.dataset.path}: every interaction is on one day (dataset.timestamps="
                         f"{cfg.dataset.timestamps}; a log without time lands at 2000-01-01): the pipeline splits "
                         "by day and needs several. `pinrec eval-retrieval` works without time.")
    if summary.partition == "day":  # (by month or year the event days are known after ingest: checked there)
        try:
            holdout_days(summary.rows.get("impressions", {}), cfg.training)
        except ValueError as err:
            raise ValueError(f"dataset {cfg.dataset.path}: {err}") from None


class LandingSteps(StepsBase):
    """:class:`~pinrec.jobs.orchestration.steps_base.StepsBase` plus the landing step."""

    def landing_digests(self) -> dict[str, str]:
        """``{relative path: content digest}`` of every file of the landing zone (the truth included)."""
        root = self.cfg.storage.location("landing")
        prefix = root.path.rstrip("/") + "/"
        return {f.path[len(prefix):]: file_digest(f, self.spark) for f in root.files_below()
                if f.path[len(prefix):] != LANDING_MARKER}

    def landing(self):
        """Write the configured source into the landing zone unless the marker says it holds it already."""
        from pinrec.jobs.ingest.landing import LandingSummary

        cfg, root = self.cfg, self.cfg.storage.location("landing")
        if cfg.dataset.kind == "synthetic":
            fp = fingerprint("landing", code=code_hash("pinrec.jobs.ingest.synthetic"),
                             config={"synthetic": cfg.synthetic, "seed": cfg.seed})
        else:
            inputs = {}
            for tag, path in (("", cfg.dataset.path), ("items:", cfg.dataset.items)):  # a log's item file too
                source = as_location(path) if path else None
                files = [] if source is None else source.files_below() if source.is_dir() else [source]
                inputs |= {tag + f.path[len(source.path):]: file_digest(f, self.spark) for f in files}
            fp = fingerprint("landing", code=code_hash("pinrec.jobs.ingest.log_reader"),  # its closure: datasets too
                             config={k: v for k, v in dataclasses.asdict(landing_dataset(cfg)).items()
                                     if k not in ("path", "items")},
                             inputs=inputs)
        self.fingerprints["landing"] = fp
        marker = root / LANDING_MARKER
        meta = json.loads(marker.read_text()) if marker.is_file() else {}
        # reused while every file the source wrote is as it wrote it (days landed since by others may be added)
        current = self.landing_digests() if meta.get("fingerprint") == fp else {}
        intact = bool(meta.get("files")) and all(current.get(k) == v for k, v in meta["files"].items())
        if self.cache.hit("landing", fp, meta.get("fingerprint") if intact else None):
            rows = {t: {dt.date.fromisoformat(d): n for d, n in per.items()} for t, per in meta["rows"].items()}
            summary = LandingSummary(rows, meta["faults"], meta["duplicates"], meta.get("partition", "day"),
                                     meta.get("labels", {}), meta.get("negatives", 0))
            return Cached("landing", fp, f"{sum(map(len, rows.values()))} partitions", summary)
        summary = self._fill()
        marker.write_text(json.dumps({
            "fingerprint": fp, "files": self.landing_digests(), "faults": summary.faults,
            "duplicates": summary.duplicates, "partition": summary.partition, "labels": summary.labels,
            "negatives": summary.negatives,
            "rows": {t: {d.isoformat(): n for d, n in per.items()} for t, per in summary.rows.items()}},
            sort_keys=True))
        return summary

    def landing_fingerprint(self) -> str | None:
        """The landing step's fingerprint: this run's, else the one the landing marker records (a DAG task
        does not fill the landing zone); None when neither exists."""
        if "landing" not in self.fingerprints:
            marker = self.cfg.storage.location("landing") / LANDING_MARKER
            self.fingerprints["landing"] = json.loads(marker.read_text()).get("fingerprint") if marker.is_file() else None
        return self.fingerprints["landing"]

    def _fill(self):
        return fill_landing(self.cfg)

"""Artifacts of the ranker job: the content-hashed model version, the ONNX (+ int8) export with its
parity and int8 checks, the copy to ``<artifacts>/ranker/<version>/`` and the MLflow record."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinrec.jobs.io.folders import put_file
from pinrec.jobs.io.lake import Location, as_location

if TYPE_CHECKING:
    from .ranker_report import RankerReport


def model_version(model, enc, configs: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(configs, sort_keys=True, default=str).encode() + enc.to_json().encode())
    state = model.state_dict()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return "ranker-" + digest.hexdigest()[:16]


def _fields(report: RankerReport) -> dict[str, Any]:
    return {k: getattr(report, k) for k in report.__dataclass_fields__}


def export_onnx(trainer, cal, enc, result, version, encoded, y, w, probs, tmp, job,
                report_embedding_version: str = "") -> tuple[dict[str, str], dict]:
    """ONNX (+ int8) of the scoring graph in ``tmp``; parity and int8 AUC drop on the test rows."""
    import numpy as np

    from pinrec.export.build.onnx_ranker import (
        auc_drop,
        export_ranker,
        quantize_int8,
        run,
        session,
    )

    test = encoded["test"]
    files = {"encoder.json": os.path.join(tmp, "encoder.json"), "calibration.json": os.path.join(tmp, "calibration.json")}
    with open(files["encoder.json"], "w") as fh:
        fh.write(enc.to_json())
    with open(files["calibration.json"], "w") as fh:
        fh.write(cal.to_json())
    files["ranker.onnx"] = export_ranker(trainer.model, cal, os.path.join(tmp, "ranker.onnx"), result.logit_offset,
                                         metadata={"pinrec.encoder": enc.to_json(), "pinrec.model_version": version,
                                                   "pinrec.embedding_version": report_embedding_version})
    out = run(session(files["ranker.onnx"]), test.categorical, test.dense)
    diff = max(float(np.abs(out[f"p_{t}"] - probs[:, i]).max()) for i, t in enumerate(cal.tasks))
    diff = max(diff, float(np.abs(out["score"] - cal.score(probs)).max()))
    extra: dict[str, Any] = {"onnx_max_abs_diff": diff}
    if job.int8:
        val = encoded["validation"][: min(len(encoded["validation"]), 2048)]
        logging.disable(logging.WARNING)  # onnxruntime's quantiser advises pre-processing once per probed node
        try:
            files["ranker.int8.onnx"] = quantize_int8(files["ranker.onnx"], os.path.join(tmp, "ranker.int8.onnx"),
                                                      sample=(val.categorical, val.dense))
        finally:
            logging.disable(logging.NOTSET)
        drops = {}
        for i, t in enumerate(cal.tasks):
            if 0 < (y[:, i] > 0.5).sum() < len(y):
                q = auc_drop(files["ranker.onnx"], files["ranker.int8.onnx"], test.categorical, test.dense,
                             y[:, i], t, w)
                drops[t] = q.auc_drop
        extra["int8_auc_drop"] = drops
    return files, extra


def publish_artifacts(files: dict[str, str], target: str | Path | Location, report: RankerReport) -> str:
    """Copy the exported ``files`` ({name: local path}) and then ``metrics.json`` (the report) into
    the folder ``target`` (a local path or a Location; a plain ``s3://`` string gets AWS's own
    endpoint). ``metrics.json`` goes last: a folder that has it is complete
    (:func:`pinrec.jobs.publish.bundle_sources.newest_ranker` looks for it). Returns ``target``'s URI."""
    folder = as_location(target)
    for name, local in files.items():
        put_file(local, folder / name)
    (folder / "metrics.json").write_text(json.dumps(report_dict(report), sort_keys=True, indent=1, default=str))
    return str(folder)


def report_dict(report: RankerReport) -> dict[str, Any]:
    d = _fields(report)
    d["metrics"] = [asdict(m) for m in report.metrics]
    d["debias"] = [{**asdict(x), "debiased_closer": x.debiased_closer, "verdict": x.verdict} for x in report.debias]
    d["auc_gaps"] = [asdict(g) for g in report.auc_gaps]
    return d


def log_run(run, report, files, y, probs, with_pos, oracle_free, position, w, tasks) -> None:
    from . import ranker_eval as ev

    flat: dict[str, float] = {"onnx_max_abs_diff": report.onnx_max_abs_diff, "seconds": report.seconds,
                              "best_epoch": report.best_epoch}

    def key(model: str) -> str:
        return model.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")

    for row in report.metrics:
        flat |= row.as_dict(f"test_{key(row.model)}_")
    for g in report.auc_gaps:
        name = f"auc_gap_{key(g.reference)}_minus_{key(g.model)}_{g.task}"
        flat |= {name: g.gap, f"{name}_low": g.low, f"{name}_high": g.high}
    for d in report.debias:
        flat |= {f"kendall_tau_debiased_{d.task}": d.tau_debiased, f"kendall_tau_no_position_{d.task}": d.tau_no_position}
        if not math.isnan(d.low):
            flat |= {f"kendall_tau_difference_{d.task}_low": d.low, f"kendall_tau_difference_{d.task}_high": d.high}
    flat |= {f"int8_auc_drop_{t}": v for t, v in report.int8_auc_drop.items()}
    run.log_metrics(flat)
    run.log_figure(ev.reliability_figure(y, probs, tasks, w), "plots/reliability.png")
    run.log_figure(ev.position_ctr_figure(position, y, with_pos, probs, tasks, oracle_free, w),
                   "plots/ctr_by_position.png")
    run.log_dict(report_dict(report), "ranker_report.json")
    for path in files.values():
        run.log_artifact(path, "ranker")
    run.set_tags({"model_version": report.model_version})


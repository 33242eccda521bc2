"""The whole configuration (:class:`PinrecConfig`): one field per section, each declared beside the
stage it configures, and the checks that span sections. :mod:`pinrec.jobs.config` re-exports it."""
from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Annotated

from pydantic import Field, model_validator

from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import PublishConfig
from pinrec.export.index_choice import IndexConfig
from pinrec.export.serving.recommend import RecommendConfig
from pinrec.export.serving.redis_format import RedisConfig
from pinrec.jobs.cf.config import CfConfig
from pinrec.jobs.features.config import (
    TRAINING_LABELS,
    FeatureConfig,
    TrainingSetConfig,
)
from pinrec.jobs.funnel.config import FunnelConfig
from pinrec.jobs.ingest.config import DatasetConfig, IngestConfig, SyntheticConfig
from pinrec.jobs.io.spark_config import SparkConfig
from pinrec.jobs.io.storage_config import StorageConfig
from pinrec.jobs.monitoring.config import MonitoringConfig
from pinrec.jobs.orchestration.config import StepCacheConfig
from pinrec.jobs.ranking.config import RankerJobConfig
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.models.config import (
    CalibrationConfig,
    PinSageTrainConfig,
    RankerConfig,
    RankerTrainConfig,
    TwoTowerConfig,
)
from pinrec.schemas.config_base import ConfigError, section

__all__ = ["PinrecConfig"]


@section("")
class PinrecConfig:
    """The whole configuration: one field per section (see ``docs/config-reference.md``) and
    ``seed``: the seed of the synthetic world's generator, the training set's negative sampling and the drift
    monitor's row sample (the models and the index have their own)."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    training: TrainingSetConfig = field(default_factory=TrainingSetConfig)
    pinsage: PinSageTrainConfig = field(default_factory=PinSageTrainConfig)
    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    cf: CfConfig = field(default_factory=CfConfig)
    retrieval_eval: RetrievalEvalConfig = field(default_factory=RetrievalEvalConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    ranker_train: RankerTrainConfig = field(default_factory=RankerTrainConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    ranker_job: RankerJobConfig = field(default_factory=RankerJobConfig)
    index: IndexConfig = field(default_factory=lambda: IndexConfig(shards=2))  # the demo serves 2 shards
    blessing: BlessingConfig = field(default_factory=BlessingConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    funnel: FunnelConfig = field(default_factory=FunnelConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    cache: StepCacheConfig = field(default_factory=StepCacheConfig)
    seed: Annotated[int, Field(ge=0)] = 7

    @model_validator(mode="after")
    def _storage_reaches_the_executors(self):
        """A cluster master with the lake on the driver's disk (:meth:`StorageConfig.check_master`)."""
        self.storage.check_master(self.spark.master)
        return self

    @model_validator(mode="after")
    def _tasks_agree(self):
        """Settings of the ranker's tasks that must agree, checked before a run trains for an hour."""
        for where, tasks in (("ranker.tasks", self.ranker.tasks), ("monitoring.tasks", self.monitoring.tasks)):
            if bad := [t for t in tasks if t not in TRAINING_LABELS]:
                raise ConfigError(f"{where} names {bad}: the training set's labels are {list(TRAINING_LABELS)}")
        n = len(self.ranker.tasks)
        for where, weights in (("calibration.score_weights", self.calibration.score_weights),
                               ("ranker_train.task_weights", self.ranker_train.task_weights or None)):
            if weights is not None and len(weights) != n:
                raise ConfigError(f"{where} {list(weights)} needs one weight per ranker task {list(self.ranker.tasks)}"
                                  f"{' (or null: the defaults per task)' if where.startswith('calibration') else ''}")
        return self

    def index_for(self, channel: str) -> IndexConfig:
        """``index`` with ``k`` raised to as many neighbours as ``recommend`` asks of that index per query
        (``channel``: ``"ann"``, the PinSage index, ``recommend.ann_candidates``; ``"two_tower"``,
        ``two_tower_candidates``): an IVF index tuned and measured at k = 10 finds far fewer of the true
        top 500 at k = 500 (and pads with -1), so the build tunes recall and latency at the serving k."""
        wanted = {"ann": self.recommend.ann_candidates, "two_tower": self.recommend.two_tower_candidates}
        if channel not in wanted:
            raise ValueError(f"index_for: channel must be one of {sorted(wanted)}, got {channel!r}")
        return dataclasses.replace(self.index, k=max(self.index.k, wanted[channel]))

    @property
    def bundle_store_uri(self) -> str:
        """Where bundles are published: ``publish.store_uri`` when set, else
        ``<storage.artifacts>/serving`` (so a changed or ``s3://`` artifacts location carries the
        bundles with it). Derived on every read, never stored, so ``replace(storage=...)`` follows."""
        return self.publish.store_uri or f"{self.storage.artifacts.rstrip('/')}/serving"

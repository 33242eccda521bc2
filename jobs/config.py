"""One typed, frozen configuration for every pinrec job.

Defaults live in code; a YAML file (``--config``) and ``--set section.key=value`` overrides only
change what they name. Every section is a frozen pydantic v2 dataclass (:mod:`pinrec.schemas.config_base`:
``extra="forbid"``, ``Field`` bounds, ``Literal`` choices): an unknown key, a wrong type or a value
out of bounds raises :class:`ConfigError` naming the dotted key, what was given and what is allowed,
and an unknown key names the nearest valid one, so a typo never silently falls back to a default
(Feast's ``extra="forbid"``). :mod:`pinrec.jobs.config_schema` exports the JSON Schema and the
reference page ``docs/config-reference.md``.

Every job receives the narrowest sub-config it needs (``cfg.spark``, ``cfg.ingest``, ...).

Each section is declared beside what it configures: ``storage`` (:mod:`pinrec.jobs.io.storage_config`),
``spark`` (:mod:`pinrec.jobs.io.spark_config`), ``synthetic`` / ``dataset`` / ``ingest``
(:mod:`pinrec.jobs.ingest.config`), ``features`` / ``training`` (:mod:`pinrec.jobs.features.config`),
``cache`` (:mod:`pinrec.jobs.orchestration.config`), the models' in :mod:`pinrec.models.config`, the
serving side's in :mod:`pinrec.export`, the others in their stage's ``config.py``. This module is the
one place to import them from: it re-exports every section, :class:`PinrecConfig`
(:mod:`pinrec.jobs.config_root`) and the loading functions (:mod:`pinrec.jobs.config_load`).
"""
from __future__ import annotations

# The sections not named in __all__ stay importable from here, as before the split (noqa: re-exports).
from pinrec.export.build.blessing import BlessingConfig  # noqa: F401
from pinrec.export.build.publish import PublishConfig  # noqa: F401
from pinrec.export.index_choice import IndexConfig  # noqa: F401
from pinrec.export.serving.recommend import RecommendConfig  # noqa: F401
from pinrec.export.serving.redis_format import RedisConfig  # noqa: F401
from pinrec.jobs.cf.config import CfConfig  # noqa: F401
from pinrec.jobs.config_load import load_config, parse_overrides, replace
from pinrec.jobs.config_root import PinrecConfig
from pinrec.jobs.features.config import (  # noqa: F401
    TRAINING_LABELS,
    FeatureConfig,
    TrainingSetConfig,
)
from pinrec.jobs.funnel.config import FunnelConfig  # noqa: F401
from pinrec.jobs.ingest.config import DatasetConfig, IngestConfig, SyntheticConfig
from pinrec.jobs.io.spark_config import SparkConfig
from pinrec.jobs.io.storage_config import (  # noqa: F401
    LAKE_LOCATIONS,
    SPARK_LOCATIONS,
    StorageConfig,
    s3_options,
)
from pinrec.jobs.monitoring.config import MonitoringConfig  # noqa: F401
from pinrec.jobs.orchestration.config import PIPELINE_STEPS, StepCacheConfig  # noqa: F401
from pinrec.jobs.ranking.config import RankerJobConfig  # noqa: F401
from pinrec.jobs.retrieval.config import RetrievalEvalConfig  # noqa: F401
from pinrec.models.config import (  # noqa: F401
    CalibrationConfig,
    PinSageTrainConfig,
    RankerConfig,
    RankerTrainConfig,
    TwoTowerConfig,
)
from pinrec.schemas.config_base import ConfigError

__all__ = ["LAKE_LOCATIONS", "ConfigError", "DatasetConfig", "FeatureConfig", "IngestConfig", "PinrecConfig",
           "SparkConfig", "StorageConfig", "SyntheticConfig", "TrainingSetConfig", "load_config", "parse_overrides",
           "replace", "s3_options"]

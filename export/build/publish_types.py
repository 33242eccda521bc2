"""What publishing takes and gives: the ``publish`` config section, a candidate's local files and their
place in the bundle, the result, the error, and the step hook tests inject failures through.

Used by :mod:`pinrec.export.build.publish_protocol` and :mod:`pinrec.export.build.channel_moves`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, field_validator

from pinrec.schemas.config_base import section
from pinrec.schemas.manifest import (
    ChannelPointer,
    Manifest,
    check_channel,
    check_name,
    check_relpath,
)

Hook = Callable[[str], None]
"""Called with the name of each step done (``claimed``, ``upload:<path>``, ``uploaded``, ``verified``,
``manifest``, ``pointer:before``, ``pointer:after``); tests inject failures through it."""


class PublishError(RuntimeError):
    """A bundle cannot be published (version exists, a file did not survive the upload...)."""


@section("publish")
class PublishConfig:
    """Where bundles go and how many stay.

    ``store_uri``: local directory or ``s3://bucket/prefix`` (None: the pipeline's
    ``<storage.artifacts>/serving``, see ``PinrecConfig.bundle_store_uri``); ``name``: the bundle (e.g. the
    surface, ``homefeed``); ``channel``: what serving follows; ``keep_blessed`` /
    ``keep_unblessed``: newest promoted / rejected versions kept by ``prune``;
    ``incomplete_grace_s``: age after which a version without manifest (a dead publisher's) goes.
    """

    store_uri: str | None = None
    name: str = "homefeed"
    channel: str = "prod"
    keep_blessed: Annotated[int, Field(ge=1)] = 5
    keep_unblessed: Annotated[int, Field(ge=0)] = 2
    incomplete_grace_s: Annotated[int, Field(ge=0)] = 86_400

    @field_validator("store_uri")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        """A local path, ``file://`` or ``s3://`` / ``s3a://bucket[/prefix]``: checked here, not after a build."""
        if value is None:
            return value
        scheme, _, rest = value.partition("://")
        if not value.strip() or (rest and scheme not in ("file", "s3", "s3a")) or (scheme in ("s3", "s3a") and not
                                                                                  rest.split("/")[0]):
            raise ValueError(f"publish.store_uri must be a local path, file://..., or s3://bucket[/prefix] "
                             f"(s3a:// too), got {value!r}")
        if not rest and value.split("/")[0].rstrip(":").lower() in ("s3", "s3a", "gs", "gcs", "http", "https"):
            raise ValueError(f"publish.store_uri {value!r} looks like a URI missing its '://' (a local folder named "
                             f"{value.split('/')[0]!r} would be used): write s3://bucket[/prefix]")
        return value

    @field_validator("name", "channel")
    @classmethod
    def _safe_name(cls, value: str, info) -> str:  # ManifestError names the key and the allowed characters
        (check_name if info.field_name == "name" else check_channel)(f"publish.{info.field_name}", value)
        return value


@dataclass(frozen=True)
class BundleFiles:
    """Local files of a candidate; their place in the bundle is fixed: ``index/index.json``,
    ``index/<shard file name>``, ``ranker/ranker.onnx``, ``ranker/encoder.json``,
    ``pins/pins.parquet``, ``extra/<file name>``."""

    index_meta: str
    index_shards: tuple[str, ...]
    ranker: str
    encoder: str
    pins: str
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.index_shards, str) or not self.index_shards:
            raise ValueError("BundleFiles.index_shards must be a non-empty tuple of paths")
        missing = [p for _, p, _ in self.layout() if not os.path.isfile(p)]
        if missing:
            raise ValueError(f"bundle files not found: {missing}")
        targets = [t for t, _, _ in self.layout()]
        if len(set(targets)) != len(targets):
            raise ValueError(f"two files map to the same bundle path: {sorted(targets)}")

    def layout(self) -> list[tuple[str, str, str]]:
        """(bundle path, local path, role) for every file, shards in index order."""
        rows = [("index/index.json", self.index_meta, "index_meta")]
        rows += [(f"index/{os.path.basename(p)}", p, "index_shard") for p in self.index_shards]
        rows += [("ranker/ranker.onnx", self.ranker, "ranker"), ("ranker/encoder.json", self.encoder, "encoder"),
                 ("pins/pins.parquet", self.pins, "pins")]
        rows += [(f"extra/{os.path.basename(p)}", p, "extra") for p in self.extras]
        for target, _, _ in rows:
            check_relpath(target)
        return rows


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest
    promoted: bool
    pointer: ChannelPointer | None

    @property
    def version(self) -> str:
        return self.manifest.version

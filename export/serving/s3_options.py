"""How a store reaches an S3 server: :class:`S3Options`, the endpoint's checks, pyarrow's filesystem.

Credentials come from :class:`S3Options` (filled by the caller's ``main()`` from its
config/environment) or, when omitted, from the AWS SDK's own chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``...). They are never part of a repr, a log line or a
manifest. Base install only: pyarrow.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

__all__ = ["REGION", "S3Options", "arrow_s3", "endpoint_problem", "shown_url"]

#: a region name as S3 servers take it: AWS's ``us-east-1``, or a server's own (MinIO, Garage, SeaweedFS
#: accept any); it is signed into every request (SigV4), so blanks or slashes would only fail later
REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def endpoint_problem(url: str) -> str | None:
    """What is wrong with ``url`` as an S3 endpoint (None: nothing): it must be ``http(s)://host[:port]``.
    A path is refused (pyarrow keeps only host:port, s3a and boto3 keep the path: two clients would
    talk to different places), and so are ``user:password@`` (keys belong to the AWS variables, and
    the URL is printed and exported to MLflow), a query and a fragment. Never repeats a password."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if "@" in parsed.netloc:
        return "credentials (user:password@) are refused: give keys as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    if not parsed.hostname:
        return "it names no host"
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.params:
        return "a path, query or fragment is refused (pyarrow would drop it, s3a and boto3 keep it): give host[:port]"
    try:
        parsed.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError:
        return "its port is not a number from 0 to 65535"
    return None


def shown_url(url: str) -> str:
    """``url`` as an error may print it: a ``user:password@`` part replaced by ``***@``."""
    parsed = urlparse(url)
    return parsed._replace(netloc="***@" + parsed.netloc.rpartition("@")[2]).geturl() if "@" in parsed.netloc else url


@dataclass(frozen=True)
class S3Options:
    """Connection to an S3 server. ``endpoint_url`` like ``http://127.0.0.1:8333`` (None: AWS);
    keys None = the SDK's default credential chain. The keys never appear in ``repr``."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("S3Options: give both access_key and secret_key, or neither")
        if self.endpoint_url is not None and (problem := endpoint_problem(self.endpoint_url)):
            raise ValueError(f"S3Options.endpoint_url must be http(s)://host[:port], got {shown_url(self.endpoint_url)!r}: "
                             f"{problem}")
        if not isinstance(self.region, str) or not REGION.fullmatch(self.region):
            raise ValueError(f"S3Options.region must be a region name of letters, digits, '-', '_' or '.' "
                             f"(such as us-east-1), got {self.region!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Options:
        """For ``main()``: the AWS variables (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``,
        ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).
        pyarrow ignores the endpoint variables, hence this."""
        return cls(endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   access_key=env.get("AWS_ACCESS_KEY_ID") or None, secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None)


def arrow_s3(opts: S3Options, **options):
    """pyarrow's S3 filesystem for ``opts`` (endpoint, region; keys, else the SDK's chain);
    ``options``: more ``S3FileSystem`` arguments (timeouts, a retry strategy)."""
    from pyarrow import fs as pafs

    kwargs: dict = {"region": opts.region, **options}
    if opts.endpoint_url:
        endpoint = urlparse(opts.endpoint_url)
        kwargs.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
    if opts.access_key is not None:
        kwargs.update(access_key=opts.access_key, secret_key=opts.secret_key)
    return pafs.S3FileSystem(**kwargs)

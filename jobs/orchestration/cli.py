"""``pinrec``: one subcommand per job; each calls the same function a DAG or notebook would.

The one command-line front end (console script ``pinrec`` = ``python -m pinrec.jobs.orchestration.cli``,
also what torchrun and spark-submit run). The parser (:mod:`~pinrec.jobs.orchestration.cli_parser`)
imports nothing heavy, so ``--help`` is instant; the command bodies
(:mod:`~pinrec.jobs.orchestration.cli_jobs`, :mod:`~pinrec.jobs.orchestration.cli_ops`) and the
config load only once a command runs.

Every job command takes ``--config FILE`` (YAML, see config/pinrec.example.yaml) and any number of
``--set section.key=value`` overrides; besides them only the standard AWS variables are read (the S3
endpoint and region of the bundle store, :func:`~pinrec.jobs.config.load_config`), here, once.

Exit codes: 0 done; 1 ``stack status`` found a dead service; 2 bad usage, config or input, or an
environment error (a missing file, an unreachable store or Redis, a publish conflict, a package of an extra
that is not installed); 3 data or a candidate
rejected (an ingestion error; ``publish bundle --fail-unblessed`` not promoted). A domain error is
one line ``pinrec <command>: <message>`` on stderr, its traceback too with ``-v``; any other
exception is a bug and always shows its traceback.
"""
from __future__ import annotations

import logging
import sys
import traceback
import warnings

from .cli_parser import build_parser

__all__ = ["DOMAIN_ERRORS", "build_parser", "main"]

# (module, class, exit code, message prefix): the errors that are the user's or the environment's to
# fix. Looked up only in modules already imported: an exception of a module never loaded cannot occur.
DOMAIN_ERRORS = (
    ("pinrec.schemas.config_base", "ConfigError", 2, "configuration error: "),
    ("pinrec.jobs.ingest.ingest_read", "IngestError", 3, ""),  # with its subclasses (schema drift, empty batch ...)
    ("pinrec.jobs.orchestration.stack", "StackError", 2, ""),
    ("pinrec.jobs.io.table_lease", "ConcurrentWriterError", 2, ""),
    ("pinrec.jobs.io.jars", "JarsMissingError", 2, ""),
    # each where it is defined (a module that raises it has loaded it), not a facade that re-exports it
    ("pinrec.export.build.publish_types", "PublishError", 2, ""),
    ("pinrec.export.serving.bundle_store", "PointerConflict", 2, ""),
    ("pinrec.export.serving.bundle_open", "BundleError", 2, ""),
    ("pinrec.jobs.features.redis_export", "RedisExportError", 2, ""),  # Redis down or refusing the export
    ("pinrec.jobs.orchestration.cli_recommend", "RedisUnavailableError", 2, ""),  # --redis-url cannot serve
    ("builtins", "OSError", 2, ""),  # a missing file, an unreachable store
    ("builtins", "ValueError", 2, ""),  # a malformed input met at the boundary
)


def domain_error(error: BaseException) -> tuple[int, str] | None:
    """(exit code, message prefix) when ``error`` is a domain error (:data:`DOMAIN_ERRORS`, first
    match; or a third-party package missing, as on a base install that serves bundles only), None
    when it is a bug."""
    missing = error.name if isinstance(error, ModuleNotFoundError) else None
    if missing and missing.split(".")[0] != "pinrec":  # one of pinrec's own modules missing is a bug
        return 2, (f"this command needs {missing.split('.')[0]!r}, which the base install (serving only) does not "
                   f"include: pip install 'pinrec[pipeline]' (DAGs: [airflow], Redis: [redis]). ")
    for module, name, code, prefix in DOMAIN_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(error, cls):
            return code, prefix
    return None


#: (logger, level) of third-party lines every run printed that no user can act on; ``-v`` keeps them
NOISY_LOGGERS = (("torch.onnx._internal.exporter._registration", logging.ERROR),)  # "torchvision is not installed"
#: (message regex, category) of such warnings: importing torch_geometric calls the deprecated torch.jit.script
NOISY_WARNINGS = ((r"`torch\.jit\.script` is deprecated", FutureWarning),)


def quiet_third_party_noise() -> None:
    """Silence :data:`NOISY_LOGGERS` and :data:`NOISY_WARNINGS` (the application's choice, so only
    :func:`main` makes it: a library importing pinrec keeps its own warning filters)."""
    for name, level in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for message, category in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit code (the module's
    docstring lists them); a usage error or ``--help`` exits from the parser (SystemExit 2 or 0)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        quiet_third_party_noise()
    try:
        # the config and the command bodies load only once a command runs (a base install lacks their packages)
        from . import cli_jobs, cli_ops

        return {**cli_jobs.COMMANDS, **cli_ops.COMMANDS}[args.handler](args)
    except Exception as e:
        known = domain_error(e)
        if known is None:
            raise
        if args.verbose:
            traceback.print_exc()
        code, prefix = known
        print(f"pinrec {args.handler}: {prefix}{e}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())

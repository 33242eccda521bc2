"""The per-batch ingestion report: row accounting, failed expectations, samples, Delta version."""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from .validation import CheckResult


class AccountingError(RuntimeError):
    """rows in != rows written + rows quarantined + duplicates dropped (a bug, never data)."""


@dataclass(frozen=True)
class IngestReport:
    table: str
    days: tuple[dt.date, ...]
    batch_id: str
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    expectations: tuple[CheckResult, ...] = ()
    samples: dict[str, list[str]] = field(default_factory=dict)
    max_failing_fraction: float = 1.0
    delta_version: int | None = None

    @property
    def failing_fraction(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def rejected(self) -> bool:
        return self.failing_fraction > self.max_failing_fraction

    def check_accounting(self) -> None:
        written = self.rows_valid + self.rows_quarantined + self.duplicates_dropped
        if written != self.rows_in:
            raise AccountingError(
                f"{self.table} {self.batch_id}: rows in {self.rows_in} != valid {self.rows_valid} + quarantined "
                f"{self.rows_quarantined} + duplicates {self.duplicates_dropped}")

    def with_version(self, version: int | None) -> IngestReport:
        return dataclasses.replace(self, delta_version=version)

    def summary_line(self) -> str:
        span = f"{self.days[0]}" if len(self.days) == 1 else f"{self.days[0]}..{self.days[-1]}"
        version = "-" if self.delta_version is None else str(self.delta_version)
        return (f"{self.table:<16} {span:<23} in={self.rows_in:<8} valid={self.rows_valid:<8} "
                f"quarantined={self.rows_quarantined:<6} duplicates={self.duplicates_dropped:<5} delta_v={version}")

    def render(self) -> str:
        """A human-readable report: what failed, how often, and sample rows."""
        verdict = "REJECTED" if self.rejected else "accepted"
        lines = [
            (f"Batch {self.batch_id} {verdict}: {self.rows_quarantined} of {self.rows_in} rows "
             f"({self.failing_fraction:.1%}) failed validation; the limit is {self.max_failing_fraction:.1%}."),
            f"  valid={self.rows_valid} quarantined={self.rows_quarantined} duplicates dropped={self.duplicates_dropped}",
        ]
        failed = [e for e in self.expectations if not e.success]
        if failed:
            lines.append("  Failed expectations (Great Expectations):")
            lines += [f"    - {e.expectation} [{e.name}]: {e.unexpected} rows" for e in failed]
        if self.quarantined_by_reason:
            lines.append("  Quarantined rows by reason:")
            for reason, n in sorted(self.quarantined_by_reason.items(), key=lambda kv: -kv[1]):
                lines.append(f"    - {reason}: {n}")
                for raw in self.samples.get(reason, [])[:3]:
                    lines.append(f"        e.g. {raw[:200]}")
        if self.rejected:
            lines.append("  Nothing was written to the valid table; the failing rows are in the quarantine table.")
        return "\n".join(lines)

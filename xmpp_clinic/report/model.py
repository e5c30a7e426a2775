"""What a report is made of: one finding per requirement, plus the weakened controls.

Plain frozen dataclasses with a JSON form, so a saved report can be read back and
compared with a later one (IV.4).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.Enum):
    """How far the live system meets a requirement."""

    MET = "met"
    PARTLY = "partly"
    NOT_MET = "not met"
    ORGANISATIONAL = "organisational"


class Outcome(enum.Enum):
    """What a test did in the run whose JUnit file was given (or ``not run``)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Evidence:
    """One fact the status rests on: ``policy.device_approval = manual``."""

    label: str
    value: str


@dataclass(frozen=True)
class TestProof:
    """An automated test that proves a control, and what it did in the given run."""

    __test__ = False  # a record of a test, not one for pytest to collect

    test: str
    outcome: Outcome = Outcome.NOT_RUN


@dataclass(frozen=True)
class Finding:
    """One requirement of the catalogue, its control, status and evidence (I.11)."""

    id: str
    level: str
    requirement: str
    control: str
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    owner: str = ""  # organisational items: who must do what
    tests: tuple[TestProof, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level,
            "requirement": self.requirement,
            "control": self.control,
            "status": self.status.value,
            "reason": self.reason,
            "evidence": [{"label": e.label, "value": e.value} for e in self.evidence],
            "owner": self.owner,
            "tests": [{"test": t.test, "outcome": t.outcome.value} for t in self.tests],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(
            id=str(data["id"]),
            level=str(data["level"]),
            requirement=str(data["requirement"]),
            control=str(data["control"]),
            status=Status(data["status"]),
            reason=str(data["reason"]),
            evidence=tuple(Evidence(str(e["label"]), str(e["value"])) for e in data["evidence"]),
            owner=str(data.get("owner", "")),
            tests=tuple(TestProof(str(t["test"]), Outcome(t["outcome"])) for t in data["tests"]),
        )


@dataclass(frozen=True)
class Report:
    """The whole compliance report of one gateway at one moment."""

    generated_at: str
    gateway: str
    version: str
    weakened: tuple[str, ...]
    findings: tuple[Finding, ...]
    test_run: str = ""  # the JUnit file's summary, or "" when none was given
    notes: tuple[str, ...] = field(default=())

    def finding(self, requirement: str) -> Finding:
        for item in self.findings:
            if item.id == requirement:
                return item
        raise KeyError(requirement)

    def counts(self) -> dict[str, int]:
        """How many findings have each status."""
        found = {status.value: 0 for status in Status}
        for item in self.findings:
            found[item.status.value] += 1
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "gateway": self.gateway,
            "version": self.version,
            "weakened": list(self.weakened),
            "counts": self.counts(),
            "test_run": self.test_run,
            "notes": list(self.notes),
            "findings": [item.as_json() for item in self.findings],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        return cls(
            generated_at=str(data["generated_at"]),
            gateway=str(data["gateway"]),
            version=str(data["version"]),
            weakened=tuple(str(w) for w in data["weakened"]),
            findings=tuple(Finding.from_json(f) for f in data["findings"]),
            test_run=str(data.get("test_run", "")),
            notes=tuple(str(n) for n in data.get("notes", ())),
        )

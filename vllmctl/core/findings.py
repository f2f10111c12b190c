"""What `vllmctl doctor` found: checks with a status, a detail and a fix, grouped by area,
and one row per model (GPU fit, Hub access, memory estimate)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
RANK = {SKIP: 0, OK: 1, WARN: 2, FAIL: 3}

# doctor's exit codes: 0 nothing failed; 1 warnings, only with --strict; 2 a check failed.
EXIT_WARNINGS = 1
EXIT_FAILURES = 2


@dataclass
class Check:
    area: str  # "tools", "cluster", "secrets", "release", "models"
    name: str  # "helm", "permissions", ...
    status: str  # ok, warn, fail or skip
    detail: str  # what was found, in plain words
    fix: str = ""  # what to do about it (warn and fail)


@dataclass
class ModelRow:
    """One model's verdicts; each cell is (status, text)."""

    name: str
    gpus: tuple[str, str] = (SKIP, "not checked")
    access: tuple[str, str] = (SKIP, "not checked")
    memory: tuple[str, str] = (SKIP, "not checked")
    fixes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return max((self.gpus[0], self.access[0], self.memory[0]), key=RANK.__getitem__)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)

    def add(self, area: str, name: str, status: str, detail: str, fix: str = "") -> Check:
        check = Check(area, name, status, detail, fix)
        self.checks.append(check)
        return check

    def row(self, name: str) -> ModelRow:
        for row in self.models:
            if row.name == name:
                return row
        row = ModelRow(name)
        self.models.append(row)
        return row

    def counts(self) -> dict[str, int]:
        statuses = [c.status for c in self.checks] + [r.status for r in self.models]
        return {status: statuses.count(status) for status in (OK, WARN, FAIL, SKIP)}

    def exit_code(self, strict: bool) -> int:
        counts = self.counts()
        if counts[FAIL]:
            return EXIT_FAILURES
        if strict and counts[WARN]:
            return EXIT_WARNINGS
        return 0

    def as_json(self) -> dict[str, Any]:
        return {
            "checks": [asdict(c) for c in self.checks],
            "models": [
                {
                    "name": r.name,
                    "status": r.status,
                    **{
                        cell: {"status": getattr(r, cell)[0], "detail": getattr(r, cell)[1]}
                        for cell in ("gpus", "access", "memory")
                    },
                    "fixes": r.fixes,
                }
                for r in self.models
            ],
            "summary": self.counts(),
        }

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{counts[OK]} ok", _plural(counts[WARN], "warning"), _plural(counts[FAIL], "failure")]
        if counts[SKIP]:
            parts.append(f"{counts[SKIP]} skipped")
        return ", ".join(parts) + "."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"

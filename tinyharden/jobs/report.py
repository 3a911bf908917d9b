"""The report job: run folders in, the report document (and its plots) out.

    from tinyharden.jobs.report import ReportRequest, report
    result = report(ReportRequest(runs=[Path("runs/quickstart")]))
    result.failed   # the gates that failed, [] if none
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field


class Bars(BaseModel):
    """The report gates; None leaves a gate out."""

    model_config = ConfigDict(extra="forbid")

    min_clean: Optional[float] = Field(None, ge=0, le=1)
    min_robust: Optional[float] = Field(None, ge=0, le=1)
    max_flash: Optional[int] = Field(None, gt=0)
    max_ram: Optional[int] = Field(None, gt=0)


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[Path]
    eps: Optional[float] = Field(None, gt=0, description="eps the attack columns show; default the largest of each run")
    baseline: Optional[str] = None
    references: str = Field("auto", description="published rows: auto, all or none")
    bars: Bars = Field(default_factory=Bars)
    plots_dir: Optional[Path] = None


@dataclass
class ReportResult:
    doc: dict[str, Any]  # the versioned report document (report.json)
    plot_files: list[Path]
    failed: list[dict[str, Any]]


def report(request: ReportRequest) -> ReportResult:
    """Collect, validate and compare the runs; gates are judged, not raised (the caller decides)."""
    from tinyharden.report.build import failed_gates, generate

    doc, _, plot_files = generate(request.runs, eps=request.eps, baseline=request.baseline,
                                  bars=request.bars.model_dump(), references=request.references,
                                  plots_dir=request.plots_dir)
    return ReportResult(doc=doc, plot_files=plot_files, failed=failed_gates(doc))

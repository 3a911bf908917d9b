"""The report as a page and as plots: columns, the table's scroll box, eps ticks, footprint ticks, one plot per space.

bench/results/report_3runs.png is the page of three real runs in headless Chromium
(tests/screenshot_report.py); these tests catch each fault that screenshot showed once.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_report import write_attack, write_export, write_metrics
from tinyharden.report.build import generate
from tinyharden.report.render import render


def _speech_run(run: Path, *, space="features", eps=(0.5 / 255, 2 / 255), eps_text=("0.5step", "2step")) -> Path:
    write_metrics(run, acc=0.9, dataset="speech_commands")
    write_export(run)
    write_attack(run, eps=list(eps), robust={"fgsm": [80, 60], "pgd": [70, 40]})
    doc = json.loads((run / "attack.json").read_text())
    doc["data"].update(dataset="speech_commands", space=space)
    doc["config"]["eps_text"] = list(eps_text)
    (run / "attack.json").write_text(json.dumps(doc))
    return run


def test_a_published_row_without_a_named_attack_makes_no_column(tmp_path):
    doc, _, _ = generate([_speech_run(tmp_path / "kws")])  # brings in the published speech row
    assert doc["attack_columns"] == ["fgsm", "pgd"]
    html = render(doc, "html")
    assert not re.search(r"<th[^>]*>\s*unspecified", html)
    assert "84.29%" in html and "attack not named" in html  # the figure is kept, under worst case
    header = render(doc, "csv").splitlines()[0]
    assert "unspecified" not in header and "unspecified" not in render(doc, "md").splitlines()[2]
    published = next(r for r in doc["rows"] if r["kind"] == "published")
    assert next(line for line in render(doc, "csv").splitlines() if line.startswith(published["id"])).count("0.8429")


def test_the_html_table_scrolls_in_its_own_box_and_flag_codes_break_at_separators(tmp_path):
    run = tmp_path / "a"
    write_metrics(run)
    write_export(run)
    write_attack(run, masking_flag=True)
    html = render(generate([run])[0], "html")
    assert '<div class="scroll"><table>' in html and ".scroll{overflow-x:auto}" in html
    assert "masking:<wbr>large_<wbr>eps_<wbr>pgd" in html


def _record_figures(monkeypatch) -> list[dict]:
    """Titles and x tick labels of every figure the report saves."""
    from tinyharden.report import plots

    seen, save = [], plots._save

    def spy(fig, path):
        fig.canvas.draw()
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True) if t.get_text()]
        seen.append({"file": Path(path).name, "title": ax.get_title(), "ticks": labels,
                     "rotation": [t.get_rotation() for t in ax.get_xticklabels()]})
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def test_one_eps_plot_per_input_space_titled_with_ticks_as_written(tmp_path, monkeypatch):
    seen = _record_figures(monkeypatch)
    feats = _speech_run(tmp_path / "features")
    wave = _speech_run(tmp_path / "waveform", space="waveform", eps=(0.0005, 0.005), eps_text=("-60dB", "-40dB"))
    generate([feats, wave], plots_dir=tmp_path / "plots")
    eps_plots = {f["file"]: f for f in seen if "robust_vs_eps" in f["file"]}
    assert set(eps_plots) == {"report_robust_vs_eps.png", "report_robust_vs_eps_waveform.png"}
    assert "model inputs" in eps_plots["report_robust_vs_eps.png"]["title"]
    assert "waveform" in eps_plots["report_robust_vs_eps_waveform.png"]["title"]
    assert eps_plots["report_robust_vs_eps.png"]["ticks"] == ["0", "0.5step", "2step"]
    assert eps_plots["report_robust_vs_eps_waveform.png"]["ticks"][1:] == ["-60dB", "-40dB"]
    assert all(r == 35 for f in eps_plots.values() for r in f["rotation"])


def test_crowded_eps_ticks_are_thinned(tmp_path, monkeypatch):
    seen = _record_figures(monkeypatch)
    eps = [k / 255 for k in (1, 1.2, 1.4, 8, 16, 32)]
    run = tmp_path / "a"
    write_metrics(run)
    write_attack(run, eps=eps, robust={"fgsm": [90, 89, 88, 60, 40, 20], "pgd": [85, 84, 83, 50, 30, 10]})
    generate([run], plots_dir=tmp_path / "plots")
    ticks = next(f for f in seen if f["file"] == "report_robust_vs_eps.png")["ticks"]
    assert "8/255" in ticks and "32/255" in ticks and len(ticks) < len(eps) + 1  # 1, 1.2 and 1.4 do not all get one


@pytest.mark.parametrize("flash", [[9_000, 24_000], [9_000, 24_000, 330_000]])
def test_footprint_ticks_are_plain_numbers(tmp_path, monkeypatch, flash):
    seen = _record_figures(monkeypatch)
    paths = []
    for i, f in enumerate(flash):
        run = tmp_path / f"r{i}"
        write_metrics(run)
        write_export(run, flash=f)
        write_attack(run)
        paths.append(run)
    generate(paths, plots_dir=tmp_path / "plots")
    ticks = next(f for f in seen if f["file"] == "report_accuracy_vs_footprint.png")["ticks"]
    assert ticks and all(re.fullmatch(r"[\d,]+(\.\d+)?", t.replace("\N{MINUS SIGN}", "-")) for t in ticks), ticks

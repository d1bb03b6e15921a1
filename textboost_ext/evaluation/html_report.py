"""``eval.html``: the comparison as one offline page, rendered from the ``eval.json`` document alone.

Self-contained: inline CSS, no scripts, no fonts or files from the network; images are relative
links into the output folder (``references/``, ``images/``), so the folder can be zipped, moved or
opened from disk. Sections: settings, references, summary (mean ± spread over seeds, change vs the
base, best value in bold), scores per prompt, and the grid (one row per prompt, one block per model,
each image's scores in its tooltip).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from textboost_ext.atomic_write import atomic_write_text
from textboost_ext.evaluation.metrics import METRICS, metric_label

HTML_NAME = "eval.html"
THUMB = 128

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
td.best { font-weight: bold; background: #eef7ee; }
.delta { color: #666; font-size: .85em; }
dl.settings { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; font-size: .9em; }
dl.settings dt { font-weight: bold; }
.row { display: flex; align-items: center; gap: .4em; margin: .2em 0; }
.row .label { width: 11em; font-size: .85em; overflow-wrap: anywhere; }
figure { margin: 0; text-align: center; font-size: .75em; }
img { width: %dpx; height: auto; image-rendering: pixelated; border: 1px solid #ddd; display: block; }
.prompt { margin-top: 1em; font-size: .9em; }
.muted { color: #777; }
""" % THUMB


def _value(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _best(metric: str, values: dict[str, float | None]) -> set[str]:
    present = {k: v for k, v in values.items() if v is not None}
    if len(present) < 2:
        return set()
    pick = max if METRICS.get(metric, METRICS["clip_t"]).higher_is_better else min
    target = pick(present.values())
    return {k for k, v in present.items() if v == target}


def _img(src: str, alt: str, title: str = "", caption: str = "") -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="{quote(src)}" alt="{escape(alt)}" title="{escape(title)}" loading="eager">{cap}</figure>')


def _settings(report: dict[str, Any]) -> str:
    items = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in report["settings"].items()
                    if k != "references" and v not in (None, "", []))
    return f'<dl class="settings">{items}</dl>'


def _summary(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    head = "".join(f'<th title="{escape(METRICS[m].meaning if m in METRICS else m)}">{escape(metric_label(m))}</th>' for m in metrics)
    rows = []
    best = {m: _best(m, {label: s.get(m) for label, s in report["summary"].items()}) for m in metrics}
    for label, summary in report["summary"].items():
        model = next(m for m in report["models"] if m["label"] == label)
        cells = []
        for m in metrics:
            spread = report["spread"][label].get(m)
            delta = report["delta_vs_base"].get(label, {}).get(m)
            text = _value(summary.get(m)) + (f" ± {spread:.3f}" if spread is not None else "")
            if delta is not None:
                text += f' <span class="delta">({delta:+.3f})</span>'
            cells.append(f'<td class="{"best" if label in best[m] else ""}">{text}</td>')
        subject = f'<span class="muted">“{escape(model["subject"])}”</span>'
        rows.append(f'<tr><td class="text">{escape(label)} {subject}</td>{"".join(cells)}</tr>')
    return f'<table><tr><th class="text">model</th>{head}</tr>{"".join(rows)}</table>'


def _per_prompt(report: dict[str, Any]) -> str:
    metrics, labels = report["metrics"], list(report["summary"])
    head1 = "".join(f'<th colspan="{len(labels)}">{escape(metric_label(m))}</th>' for m in metrics)
    head2 = "".join(f"<th>{escape(label)}</th>" for _ in metrics for label in labels)
    rows = []
    for prompt in report["prompts"]:
        i = prompt["index"]
        cells = []
        for m in metrics:
            values = {label: report["per_prompt"][label][i].get(m) for label in labels}
            best = _best(m, values)
            cells += [f'<td class="{"best" if label in best else ""}">{_value(values[label])}</td>' for label in labels]
        rows.append(f'<tr><td class="text">{escape(prompt["category"])}</td><td class="text">{escape(prompt["scoring_text"])}</td>'
                    f'{"".join(cells)}</tr>')
    return (f'<table><tr><th class="text" rowspan="2">category</th><th class="text" rowspan="2">prompt (as scored)</th>{head1}</tr>'
            f'<tr>{head2}</tr>{"".join(rows)}</table>')


def _grid(report: dict[str, Any]) -> str:
    by_cell: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for image in report["images"]:
        by_cell.setdefault((image["model"], image["prompt"]), []).append(image)
    blocks = []
    for prompt in report["prompts"]:
        rows = []
        for model in report["models"]:
            images = sorted(by_cell.get((model["label"], prompt["index"]), []), key=lambda im: im["seed"])
            figures = "".join(
                _img(im["file"], im["text"], title=f'{im["text"]}\nseed {im["seed"]}\n' + ", ".join(
                    f"{metric_label(k)} {_value(v) if isinstance(v, float) or v is None else v}" for k, v in im["scores"].items()
                    if k in report["metrics"]), caption=f'seed {im["seed"]}') for im in images)
            rows.append(f'<div class="row"><div class="label">{escape(model["label"])}</div>{figures}</div>')
        blocks.append(f'<div class="prompt"><b>{prompt["index"]}.</b> {escape(prompt["scoring_text"])} '
                      f'<span class="muted">[{escape(prompt["category"])}]</span></div>{"".join(rows)}')
    return "".join(blocks)


def render_html(report: dict[str, Any]) -> str:
    labels = [m["label"] for m in report["models"]]
    references = "".join(_img(src, f"reference {i}", caption=Path(src).name)
                         for i, src in enumerate(report["settings"].get("references", [])))
    legend = "".join(f"<li><b>{escape(metric_label(m))}</b>: {escape(METRICS[m].meaning)}"
                     f"{'' if METRICS[m].higher_is_better else ' (lower is better)'}</li>" for m in report["metrics"] if m in METRICS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TextBoost evaluation: {escape(" vs ".join(labels))}</title>
<style>{CSS}</style></head>
<body>
<h1>TextBoost evaluation: {escape(" vs ".join(labels))}</h1>
{_settings(report)}
<h2>Reference images</h2><div class="row">{references}</div>
<h2>Summary</h2>
<p class="muted">Mean over all images; ± the spread (standard deviation) over seeds; in brackets the change against the base,
which is prompted with the class noun instead of the trigger. Best value in bold.</p>
{_summary(report)}
<ul>{legend}</ul>
<h2>Scores per prompt</h2>
{_per_prompt(report)}
<h2>Images</h2>
{_grid(report)}
</body></html>
"""


def write_html(out_dir: Path, report: dict[str, Any]) -> Path:
    return atomic_write_text(Path(out_dir) / HTML_NAME, render_html(report))

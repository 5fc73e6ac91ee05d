"""`yedge report`: one self-contained HTML page of a workspace (docs/pictures.md §5) — the models
and their provenance, every eval run with its tables and pictures, bench and compare runs side by
side, show's contact sheet and doctor's findings. Everything is read from what the steps wrote;
the pictures are embedded, so the page opens anywhere with no network and no other file."""
from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..metrics.coco_eval import STAT_NAMES
from ..metrics.curves import classes_with_truth
from ..plots import run_time
from ..records import ShowRecord
from ..workspace import (
    BENCH_LATENCY_PNG,
    BENCH_STAGES_PNG,
    BENCH_THROUGHPUT_PNG,
    CONTACT_SHEET,
    METRICS,
    PR_PNG,
    Workspace,
    atomic_write_text,
)

SECTIONS = {"models": "Models and provenance", "evaluations": "Evaluations", "speed": "Speed and agreement",
            "detections": "Detections", "doctor": "This machine (doctor)"}
# a step record's parts shown elsewhere or too long to read in a table
NOT_PROVENANCE = {"inputs", "options", "outputs", "versions", "time", "io", "op_types"}
MAX_PICTURE_WIDTH = 1600  # a wider picture (show's contact sheet) is scaled down to keep the page light
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
nav a { margin-right: 1.2em; } .muted { color: #777; } caption { text-align: left; font-weight: 600; padding: 2px 0; }
table { border-collapse: collapse; margin: 0.6em 1.5em 1.2em 0; font-size: 13px; display: inline-table;
        vertical-align: top; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f4f4f4; }
figure { display: inline-block; vertical-align: top; margin: 0.5em 1em 1em 0; max-width: calc(50% - 1.5em); }
figure.wide { max-width: 100%; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { font-size: 12px; word-break: break-all; }
"""


@dataclass
class ReportResult:
    path: str
    sections: dict[str, int] = field(default_factory=dict)  # section id → tables and pictures in it
    pictures: int = 0
    bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class _Page:
    """The page as it is built: HTML fragments, counting what each section holds."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.counts: dict[str, int] = {}
        self.pictures = 0
        self._section = ""

    def section(self, key: str) -> None:
        if self._section:
            self.parts.append("</section>")
        self._section = key
        self.counts[key] = 0
        self.parts.append(f'<section id="{key}"><h2>{html.escape(SECTIONS[key])}</h2>')

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="muted">{html.escape(text)}</p>')

    def table(self, header: list[str], rows: list[list], caption: str = "") -> None:
        """Numbers right-aligned; every cell escaped."""
        self.counts[self._section] += 1
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def picture(self, path: Path, caption: str, wide: bool = False) -> None:
        self.counts[self._section] += 1
        self.pictures += 1
        kind = " class=wide" if wide else ""
        self.parts.append(f'<figure{kind}><img src="data:image/png;base64,{_png_base64(path)}" '
                          f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>')

    def html(self, title: str, header: str) -> str:
        nav = "".join(f'<a href="#{key}">{html.escape(name)}</a>' for key, name in SECTIONS.items())
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
                f"<header>{header}<nav>{nav}</nav></header>{''.join(self.parts)}</section></body></html>\n")


@dataclass(frozen=True)
class Shown:
    """A number with its own format: a cosine near 1 or a difference near 0 rounded to two
    places would read as exact."""

    value: float | None
    format: str


def _cosine(value: float | None) -> Shown:
    return Shown(value, ".6f")


def _cell(value) -> str:
    if isinstance(value, Shown):
        return '<td class="n">—</td>' if value.value is None else f'<td class="n">{value.value:{value.format}}</td>'
    if isinstance(value, float):
        return f'<td class="n">{value:.2f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="n">{value}</td>'
    if value is None:
        return '<td class="n">—</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _png_base64(path: Path) -> str:
    """The picture's PNG bytes, scaled down first when wider than MAX_PICTURE_WIDTH."""
    import cv2
    import numpy as np

    data = path.read_bytes()
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if picture is not None and picture.shape[1] > MAX_PICTURE_WIDTH:
        scale = MAX_PICTURE_WIDTH / picture.shape[1]
        picture = cv2.resize(picture, (MAX_PICTURE_WIDTH, round(picture.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        data = cv2.imencode(".png", picture)[1].tobytes()
    return base64.b64encode(data).decode("ascii")


def _read_json(path: Path):
    """A file a step wrote, or None when it is missing or torn (the page goes on without it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _models(page: _Page, ws: Workspace) -> None:
    steps = ws.manifest()["steps"]
    if not steps:
        page.note("no step has run in this workspace yet: start with `yedge export --weights FILE.pth`")
        return
    for name, entry in steps.items():
        rows = [[part, key, _short(value)] for part in ("inputs", "options", "outputs")
                for key, value in (entry.get(part) or {}).items() if value not in ("", None, [], {})]
        rows += [["result", key, _short(value)] for key, value in entry.items()
                 if key not in NOT_PROVENANCE and value not in ("", None, [], {})]
        versions = entry.get("versions") or {}
        page.table(["", "key", "value"], rows, caption=f"{name} — {entry.get('time', '')}, "
                                                       f"yedge {versions.get('yedge', '?')}")


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 300 else text[:297] + "…"


def _evaluations(page: _Page, ws: Workspace) -> None:
    runs = sorted((p for p in ws.results_dir.glob(f"*/{METRICS}") if (_read_json(p) or {}).get("coco")),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        page.note("no evaluation yet: `yedge eval` (or `yedge eval --images DIR --annotations FILE`)")
        return
    metrics = {p.parent.name: _read_json(p) for p in runs}
    page.table(["run", "backend", "device", "images", "COCO box AP", "COCO mask AP", "YOLACT box all",
                "YOLACT mask all", "NMS", "streamed"],
               [[run, m["provenance"].get("backend"), m["provenance"].get("device"), m["images"],
                 m["coco"]["bbox"]["stats"][0] * 100, m["coco"]["segm"]["stats"][0] * 100,
                 m["yolact_ap"]["box"]["all"], m["yolact_ap"]["mask"]["all"], m["nms"], m["streamed"]]
                for run, m in metrics.items()], caption="every evaluation, side by side (AP in points)")
    for run, m in metrics.items():
        page.add(f"<h3>{html.escape(run)}</h3>")
        box, mask = m["coco"]["bbox"]["stats"], m["coco"]["segm"]["stats"]
        stats = [[name, Shown(box[i], ".3f"), Shown(mask[i], ".3f")] for i, name in enumerate(STAT_NAMES)]
        page.table(["metric", "box", "mask"], stats, caption="COCOeval (as pycocotools prints it)")
        thresholds = list(m["yolact_ap"]["box"])
        page.table(["", *thresholds], [[kind, *m["yolact_ap"][kind].values()] for kind in ("box", "mask")],
                   caption="YOLACT mAP (the Ascend recipe's metric)")
        classes = classes_with_truth(m.get("per_class", []))
        if classes:
            page.table(["class", "instances", "box AP", "box AP50", "mask AP", "mask AP50"],
                       [[r["name"], r["instances"], r["box_AP"], r["box_AP50"], r["mask_AP"], r["mask_AP50"]]
                        for r in classes], caption="per class (points)")
        for picture in m.get("pictures", []):
            path = ws.root / picture
            if path.is_file():  # the PR curves whole width: their legends are small
                page.picture(path, f"{run}: {path.stem.replace('_', ' ')}", wide=path.name in PR_PNG.values())
        provenance = m["provenance"]
        page.note(f"model {provenance.get('model')} (sha256 {str(provenance.get('model_sha256'))[:12]}…), "
                  f"weights {provenance.get('weights')}, config {provenance.get('config')}")


def _speed(page: _Page, ws: Workspace) -> None:
    runs = _read_json(ws.bench_log) or []
    rows_of = [(run, run["rows"]) for run in runs if run.get("rows")]
    if rows_of:
        sizes = sorted({r["batch_size"] for _, rows in rows_of for r in rows})
        page.table(["time", "backend", "device", "model", "loops", *(f"img/s @{b}" for b in sizes), "p50 ms @1",
                    "p99 ms @1"],
                   [[run_time(run), run["backend"], run["device"], Path(run["model"]).name, rows[0].get("loops"),
                     *({r["batch_size"]: r["throughput"] for r in rows}.get(b) for b in sizes),
                     *next(([r["latency_p50_ms"], r["latency_p99_ms"]] for r in rows if r["batch_size"] == 1),
                           [None, None])] for run, rows in rows_of],
                   caption="inference bench runs (results/bench.json), throughput by batch size")
    tables = [(run, row) for run in runs for row in run.get("precisions", [])]
    if tables:
        page.table(["time", "backend", "precision", "status", "img/s @ first batch", "worst cosine",
                    "detections matched", "reason"],
                   [[run_time(run), row["backend"], row["precision"], row["status"],
                     row["rows"][0]["throughput"] if row.get("rows") else None,
                     _cosine((row.get("agreement") or {}).get("worst_cosine")),
                     (row.get("agreement") or {}).get("matched_share"), row.get("reason")] for run, row in tables],
                   caption="backends × precisions (bench --backends/--precisions)")
    staged = [run for run in runs if run.get("stages_ms")]
    if staged:
        stages = list(dict.fromkeys(k for run in staged for k in run["stages_ms"]))
        page.table(["time", "backend", "mode", *stages],
                   [[run_time(run), run["backend"], run["mode"], *(run["stages_ms"].get(k) for k in stages)]
                    for run in staged], caption="ms per image of each stage (bench --stages / --stream)")
    for name, caption in ((BENCH_THROUGHPUT_PNG, "throughput against batch size"),
                          (BENCH_LATENCY_PNG, "latency against batch size"), (BENCH_STAGES_PNG, "stages")):
        if (ws.results_dir / name).is_file():
            page.picture(ws.results_dir / name, caption)
    compared = _read_json(ws.compare_log) or []
    if compared:
        page.table(["time", "A", "B", "A precision", "B precision", "samples", "worst cosine", "largest |Δ|",
                    "matched / A / B", "mean box IoU", "within tolerance"],
                   [[run_time(c), c["a"], c["b"], c.get("a_precision"), c.get("b_precision"), c["samples"],
                     _cosine(min((o["cosine"] for o in c["outputs"]), default=None)),
                     Shown(max((o["max_abs"] for o in c["outputs"]), default=None), ".2e"),
                     f"{c['detections'].get('matched')} / {c['detections'].get('a')} / {c['detections'].get('b')}",
                     c["detections"].get("mean_box_iou"), c["ok"]] for c in compared],
                   caption="comparisons (yedge compare, results/compare.json)")
    if not (rows_of or tables or staged or compared):
        page.note("no bench or compare run yet: `yedge bench`, `yedge compare A B`")


def _detections(page: _Page, ws: Workspace) -> None:
    record = ws.load(ShowRecord)
    sheet = ws.resolve(record.folder) / CONTACT_SHEET if record else None
    if record is not None and sheet is not None and sheet.is_file():
        page.picture(sheet, f"detections drawn by `yedge show` (score ≥ {record.score_threshold})", wide=True)
    else:
        page.note("no contact sheet yet: `yedge show` draws the latest evaluation's detections")


def _doctor(page: _Page, doctor: dict | None) -> None:
    if not doctor:
        page.note("doctor's checks were not run for this report")
        return
    page.table(["area", "check", "status", "detail", "fix"],
               [[c["area"], c["name"], c["status"], c["detail"], c.get("fix", "") if c["status"] != "ok" else ""]
                for c in doctor["checks"]])


def run(ws: Workspace, doctor: dict | None = None) -> ReportResult:
    """results/report.html from what the workspace holds; `doctor`: doctor's result (its
    `to_dict()`), checked just before by the caller. A folder that is not there is refused (a
    mistyped -w), not made."""
    if not ws.root.is_dir():
        raise InputError("no workspace here", path=ws.root,
                         hint="pass -w with the workspace folder the steps ran in (default ./workspace)")
    page = _Page()
    for key, build in (("models", lambda: _models(page, ws)), ("evaluations", lambda: _evaluations(page, ws)),
                       ("speed", lambda: _speed(page, ws)), ("detections", lambda: _detections(page, ws)),
                       ("doctor", lambda: _doctor(page, doctor))):
        page.section(key)
        build()
    header = (f"<h1>yedge report</h1><p class=\"muted\">workspace <code>{html.escape(str(ws.root.absolute()))}"
              f"</code> · yedge {html.escape(__version__)} · {time.strftime('%Y-%m-%d %H:%M %Z')}</p>")
    text = page.html(f"yedge report — {ws.root.name}", header)
    atomic_write_text(ws.report, text)
    return ReportResult(path=str(ws.report), sections=page.counts, pictures=page.pictures,
                        bytes=len(text.encode("utf-8")))

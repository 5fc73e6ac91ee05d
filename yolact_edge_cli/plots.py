"""The pictures eval and bench draw (docs/pictures.md), with matplotlib: imported only here and
only when a picture is drawn, so that the rest of yedge runs without it (the `plots` extra)."""
from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .console import err
from .metrics.confusion import CONFUSION_IOU, CONFUSION_SCORE, ConfusionMatrix
from .metrics.curves import Curves
from .timing import SUMMARIES
from .workspace import (
    BENCH_LATENCY_PNG,
    BENCH_STAGES_PNG,
    BENCH_THROUGHPUT_PNG,
    CONFUSION_PNG,
    PER_CLASS_AP_PNG,
    PR_PNG,
    SCORES_PNG,
    atomic_path,
)

TOP_CLASSES = 10  # the PR curves draw the classes with the most ground truth, one line each
IOU_TYPE_WORDS = {"bbox": "box", "segm": "mask"}


def available() -> bool:
    """Whether pictures can be drawn; when not, says so once on stderr and the step goes on
    without them (the numbers never depend on matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        err.print("[yellow]warning:[/] no pictures: matplotlib is not installed (pip install 'yedge[plots]'; "
                  "--no-plots silences this)", highlight=False, soft_wrap=True)
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path, subject: str = "") -> Path:
    """The figure as a PNG, captioned above with what it is of (a picture taken out of the
    report still says where it came from)."""
    if subject:
        figure.text(0.01, 1.0, subject, fontsize=7, color="gray", ha="left", va="bottom")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(figure)
    return path


def most_frequent(instances: dict[int, int], category_ids: list[int], count: int = TOP_CLASSES) -> list[int]:
    """Indices (into `category_ids`) of the `count` classes with the most ground truth, ties in
    class order; classes without any are left out."""
    ranked = sorted((n for n, c in enumerate(category_ids) if instances.get(c, 0) > 0),
                    key=lambda n: -instances[category_ids[n]])
    return ranked[:count]


def pr_curves(curves: Curves, names: dict[int, str], instances: dict[int, int], path: Path,
              subject: str = "") -> Path:
    """Precision against recall at IoU 0.5 and over 0.5:0.95: all classes (the mean whose area is
    the AP eval reports) and the ten most frequent classes, one thin line each."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    recall = curves.recall_thresholds
    top = most_frequent(instances, curves.category_ids)
    ap, ap50 = curves.per_class_ap()
    for axis, iou, per_class in zip(axes, ("0.5", "0.5:0.95"), (ap50, ap)):
        for n in top:
            axis.plot(recall, curves.mean_curve(iou, [n]), linewidth=1,
                      label=f"{names.get(curves.category_ids[n], curves.category_ids[n])} {per_class[n]:.1f}")
        mean = curves.mean_curve(iou)
        axis.plot(recall, mean, color="black", linewidth=3, label=f"all classes {np.nanmean(per_class):.1f}")
        axis.set(title=f"{IOU_TYPE_WORDS[curves.iou_type]} precision-recall, IoU {iou}", xlabel="recall",
                 xlim=(0, 1), ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.13), ncol=3, title="AP (points)",
                    title_fontsize=7, frameon=False)
    axes[0].set_ylabel("precision")
    return _save(figure, path, subject)


def per_class_ap(rows: list[dict], path: Path, subject: str = "") -> Path:
    """Box and mask AP (IoU 0.5:0.95) of every class with ground truth, best first."""
    plt = _pyplot()
    shown = sorted((r for r in rows if r["instances"]), key=lambda r: -(r["box_AP"] or 0))
    figure, axis = plt.subplots(figsize=(max(6.0, 0.32 * len(shown) + 2), 4.5))
    x = np.arange(len(shown))
    for offset, kind in ((-0.2, "box"), (0.2, "mask")):
        axis.bar(x + offset, [r[f"{kind}_AP"] or 0 for r in shown], width=0.4, label=f"{kind} AP")
    axis.set_xticks(x, [f"{r['name']} ({r['instances']})" for r in shown], rotation=60, ha="right", fontsize=8)
    axis.set(ylabel="AP, IoU 0.5:0.95 (points)", title="per-class AP (ground-truth instances in brackets)")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path, subject)


def confusion_matrix(matrix: ConfusionMatrix, names: dict[int, str], path: Path, subject: str = "") -> Path:
    """The matrix over the classes that occur (as truth or prediction) plus background, each
    column (true class) normalised to 1, with the counts written in the cells."""
    plt = _pyplot()
    counts = matrix.counts
    used = [n for n in range(matrix.background) if counts[n].any() or counts[:, n].any()] + [matrix.background]
    shown = counts[np.ix_(used, used)]
    labels = [names.get(matrix.category_ids[n], str(matrix.category_ids[n])) if n < matrix.background
              else "background" for n in used]
    totals = shown.sum(axis=0, keepdims=True)
    share = np.divide(shown, totals, out=np.zeros(shown.shape), where=totals > 0)
    size = max(4.5, 0.45 * len(used) + 2.5)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (row, col), value in np.ndenumerate(shown):
        if value:
            axis.text(col, row, str(value), ha="center", va="center", fontsize=7,
                      color="white" if share[row, col] > 0.5 else "black")
    axis.set_xticks(range(len(used)), labels, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(used)), labels, fontsize=8)
    axis.set(xlabel="true class", ylabel="predicted class",
             title=f"confusion matrix (box IoU ≥ {CONFUSION_IOU}, score ≥ {CONFUSION_SCORE})")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    return _save(figure, path, subject)


def score_distribution(curves: dict[str, Curves], path: Path, subject: str = "") -> Path | None:
    """Histograms of the scores of true and false positives at IoU 0.5, box and mask, on a log
    scale (false positives often outnumber true ones a hundred times); None where no evaluator
    kept its matches."""
    kept = {t: c for t, c in curves.items() if c.tp_scores is not None and c.fp_scores is not None}
    if not kept:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(kept), figsize=(5.5 * len(kept), 4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for axis, (iou_type, c) in zip(axes[0], kept.items()):
        assert c.tp_scores is not None and c.fp_scores is not None
        axis.hist([c.tp_scores, c.fp_scores], bins=bins, label=[f"true positives ({len(c.tp_scores)})",
                                                                 f"false positives ({len(c.fp_scores)})"],
                  color=["tab:green", "tab:red"], histtype="stepfilled", alpha=0.5)
        axis.set(title=f"{IOU_TYPE_WORDS[iou_type]} scores at IoU 0.5", xlabel="score", ylabel="detections")
        if len(c.tp_scores) + len(c.fp_scores):
            axis.set_yscale("log")
        axis.legend(fontsize=8)
    return _save(figure, path, subject)


EVAL_PICTURES = (*PR_PNG.values(), PER_CLASS_AP_PNG, CONFUSION_PNG, SCORES_PNG)


def eval_pictures(folder: Path, curves: dict[str, Curves], rows: list[dict], matrix: ConfusionMatrix,
                  names: dict[int, str], instances: dict[int, int], subject: str = "") -> list[Path]:
    """Every eval picture into `folder`, each captioned with `subject`; the paths written."""
    written = [pr_curves(c, names, instances, folder / PR_PNG[t], subject) for t, c in curves.items()]
    if rows:
        written.append(per_class_ap(rows, folder / PER_CLASS_AP_PNG, subject))
    written.append(confusion_matrix(matrix, names, folder / CONFUSION_PNG, subject))
    scores = score_distribution(curves, folder / SCORES_PNG, subject)
    return written + ([scores] if scores else [])


def remove_stale(folder: Path, written: list[Path]) -> None:
    """The pictures of an earlier eval of this run that this one did not draw (--no-plots, or
    no score distribution with faster-coco-eval): left there, they would show other results."""
    for name in EVAL_PICTURES:
        if folder / name not in written:
            (folder / name).unlink(missing_ok=True)


def bench_series(runs: list[dict]) -> list[tuple[str, list[dict]]]:
    """One line per inference-bench run with rows: a label of backend, device, precision and
    the run's time; precision tables' rows each a line of their own."""
    lines = []
    for run in runs:
        when = run_time(run)
        model = Path(run.get("model", "")).name
        if run.get("rows"):
            loops = run["rows"][0].get("loops")
            lines.append((f"{run['backend']} {run['device']} {model} {when} ({loops} loops)", run["rows"]))
        for row in run.get("precisions", []):
            if row.get("rows"):
                lines.append((f"{row['backend']} {row['precision']} {when}", row["rows"]))
    return lines


def run_time(run: dict) -> str:
    """When a logged run ran, to the second (two runs a minute apart stay apart)."""
    return run.get("time", "")[:19].replace("T", " ")


def _lines(axis, lines: list[tuple[str, list[dict]]], value: Callable[[dict], float | None], ylabel: str) -> None:
    sizes: set[int] = set()
    for label, rows in lines:
        points = [(r["batch_size"], value(r)) for r in rows if value(r) is not None]
        if points:
            axis.plot(*zip(*points), marker="o", label=label)
            sizes.update(size for size, _ in points)
    axis.set(xlabel="batch size", ylabel=ylabel)
    axis.set_xscale("log", base=2)
    axis.minorticks_off()
    axis.set_xticks(sorted(sizes), [str(size) for size in sorted(sizes)])
    axis.grid(alpha=0.3)


def bench_pictures(folder: Path, runs: list[dict]) -> list[Path]:
    """Throughput and p50/p99 latency against batch size, one line per run of results/bench.json
    (and per row of a precision table); the stages of the latest --stages run as stacked bars."""
    plt = _pyplot()
    written = []
    lines = bench_series(runs)
    if lines:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        _lines(axis, lines, lambda r: r["throughput"], "images/s")
        axis.set_title("throughput against batch size")
        axis.legend(fontsize=7)
        written.append(_save(figure, folder / BENCH_THROUGHPUT_PNG))
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for axis, key in zip(axes, ("latency_p50_ms", "latency_p99_ms")):
            _lines(axis, lines, operator.itemgetter(key), "ms per batch")
            axis.set_title(f"{key.split('_')[1]} latency against batch size")
        axes[1].legend(fontsize=7)
        written.append(_save(figure, folder / BENCH_LATENCY_PNG))
    staged = [run for run in runs if run.get("stages_ms")]
    if staged:
        shown = staged[-6:]  # the latest runs, side by side
        figure, axis = plt.subplots(figsize=(max(5.0, 1.6 * len(shown) + 3), 4.5))
        stages = list(dict.fromkeys(k for run in shown for k in run["stages_ms"] if k not in SUMMARIES))
        bottom = np.zeros(len(shown))
        for stage in stages:
            values = np.array([run["stages_ms"].get(stage, 0.0) for run in shown])
            axis.bar(range(len(shown)), values, bottom=bottom, label=stage)
            bottom += values
        axis.set_xticks(range(len(shown)), [f"{run['backend']} {run['mode']}\n{run_time(run)}" for run in shown],
                        fontsize=7)
        axis.set(ylabel="ms per image", title="where the time goes, per stage")
        axis.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
        written.append(_save(figure, folder / BENCH_STAGES_PNG))
    return written


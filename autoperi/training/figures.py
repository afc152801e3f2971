"""Loss curves from a training history (`history.json` or `fit(...)["history"]`)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def loss_terms(history: list[dict]) -> list[str]:
    """Names of the loss terms in a history: `loss` (the total) first, then each term, in first-seen order."""
    names = []
    for record in history:
        for key in record:
            for prefix in ("train_", "val_"):
                if key.startswith(prefix) and key not in ("train_s", "val_s"):
                    name = key[len(prefix) :]
                    if name not in names:
                        names.append(name)
    return sorted(names, key=lambda n: (n != "loss", names.index(n)))


def plot_loss_curves(history: list[dict], title: str | None = None):
    """One panel per loss term: train (mean over the epoch) and val against epoch; log scale where positive."""
    names = loss_terms(history)
    cols = min(len(names), 4) or 1
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    epochs = [r["epoch"] for r in history]
    for ax, name in zip(axes.flat, names, strict=False):
        values = []
        for split, style in (("train", "-"), ("val", "o--")):
            points = [(r["epoch"], r[f"{split}_{name}"]) for r in history if f"{split}_{name}" in r]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, label=split, markersize=3)
                values += [y for y in ys if math.isfinite(y)]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if not epochs:
        axes.flat[0].text(0.5, 0.5, "no epochs", ha="center")
    plt.close(fig)  # displayed once where returned (the inline backend would show it again)
    return fig


def plot_refinement(refinements: dict[str, dict]):
    """Validation loss of each dataset's coordinate-decoder refinement (`history.json` → `refinement`) against wall
    minutes, train loss at the same points where recorded."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, refined in refinements.items():
        minutes = [h["wall_s"] / 60.0 for h in refined["history"]]
        ax.plot(minutes, [h["val_loss"] for h in refined["history"]], marker="o", label=f"{name} val")
        train = [(h["wall_s"] / 60.0, h["train_loss"]) for h in refined["history"] if "train_loss" in h]
        if train:
            ax.plot(*zip(*train, strict=True), ls=":", label=f"{name} train (last batch)")
    ax.set_xlabel("wall minutes")
    ax.set_ylabel("coordinate loss")
    ax.set_title("coordinate-decoder refinement")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig

"""Drawing helpers: a bare Agg figure, an atomic save, an image without axes, names."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..run.outputs import write_atomic

DPI = 110


def _figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas (no pyplot, no display)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    # Whole or not at all: a full disk keeps the previous picture and raises OutputError naming the file.
    write_atomic(path, lambda f: fig.savefig(f, format=path.suffix[1:] or "png", dpi=DPI, facecolor="white"))
    return path


def _show_image(ax, image, title=None, fontsize=8):
    """Draw an ``(H, W, 3)`` RGB or ``(H, W, 1)`` grey image in ``[0, 1]`` without axes."""
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize, pad=3)


def _layer_name(layer) -> str:
    return layer.name or type(layer).__name__


def _class_name(label, class_names) -> str:
    if label is None:
        return "?"
    label = int(label)
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)

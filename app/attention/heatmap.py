"""The heatmap widgets of the Attention tab: one large zoomable map with token axes, and the layers × heads grid.

A masked cell (a query's future) reads as "not allowed", never as a weight of 0 (the darkest colour): the large
map's are NaN, transparent over a grey, hatched backdrop; the grid's are plain grey (hatching would drown them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..common.text import visible_token

COLOUR_MAP = "viridis"  # perceptually uniform and readable with colour-blindness
MASK_FILL = QColor(214, 214, 214)
MASK_HATCH = QColor(150, 150, 150)
LABEL_CHARS = 10  # longer tokens are cut with "…" on the axes (the hover readout shows them whole)
LABEL_MARGINS = (8, 4, 8, 2)  # the text lines above a map, off the frame of the tab they sit in
WORDED_HEADS = 8  # with more heads the model view's columns are too narrow for "head N": numbers, titled once


def future_mask(n: int) -> np.ndarray:
    """[n, n] bool, True above the diagonal: the keys a causal query may not see."""
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def display_levels(values: np.ndarray, mask: np.ndarray | None) -> tuple[float, float]:
    """Colour levels 0..top. Each map's first query sees only itself (weight 1); letting that one cell set the
    top would darken the rest, so the top is the largest weight of the other rows (they compete for it)."""
    visible = values if mask is None else np.where(mask, np.nan, values)
    body = visible[1:] if visible.shape[0] > 1 else visible
    top = float(np.nanmax(body)) if np.isfinite(body).any() else 1.0
    return 0.0, max(top, 1e-6)


def _masked(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    image = np.array(values, dtype=np.float32)
    if mask is not None:
        image[mask] = np.nan
    return image


def _mask_backdrop(view, n_rows: int, n_cols: int) -> list[QGraphicsRectItem]:
    """Grey, hatched rectangles under the image: they show through its NaN (masked) cells only."""
    items = []
    for brush in (QBrush(MASK_FILL), QBrush(MASK_HATCH, Qt.BrushStyle.BDiagPattern)):
        item = QGraphicsRectItem(0, 0, n_cols, n_rows)
        item.setPen(QPen(Qt.PenStyle.NoPen))
        item.setBrush(brush)
        item.setZValue(-10)
        view.addItem(item)
        items.append(item)
    return items


@dataclass
class Axis:
    """One side of a heatmap: what a row (or column) is, and its labels."""
    name: str  # "query", "key", "layer", ...
    labels: list[str]  # the raw token texts, or names such as "layer 1"
    tokens: bool = True  # labels are token texts: shown through visible_token, and with their position on hover
    notes: list[str] | None = None  # a remark per label for the hover readout, e.g. what a position predicts

    def describe(self, i: int) -> str:
        text = f"{self.name} {i} “{visible_token(self.labels[i], 40)}”" if self.tokens else self.labels[i]
        return f"{text} ({self.notes[i]})" if self.notes else text


class TokenAxis(pg.AxisItem):
    """An axis that labels cell centres with tokens, thinned to every k-th so the labels never overlap."""

    def __init__(self, orientation: str):
        super().__init__(orientation)
        self.labels: list[str] = []
        self.enableAutoSIPrefix(False)

    def set_labels(self, labels: list[str]) -> None:
        self.labels = labels
        self.picture = None  # redraw with the new labels
        self.update()

    def label_extent(self) -> float:
        """Pixels along the axis that one label needs, with a little air."""
        metrics = QFontMetrics(self.style.get("tickFont") or self.font())
        if self.orientation in ("left", "right"):
            return metrics.height() + 2
        widest = max((metrics.horizontalAdvance(label) for label in self.labels), default=0)
        return widest + 8

    def tickValues(self, minVal, maxVal, size):
        minVal, maxVal = sorted((minVal, maxVal))  # an inverted view (rows top down) gives them swapped
        first, last = max(0, math.ceil(minVal - 0.5)), min(len(self.labels) - 1, math.floor(maxVal - 0.5))
        if last < first or size <= 0:
            return []
        cells_per_pixel = (maxVal - minVal) / size
        step = _nice_step(math.ceil(self.label_extent() * cells_per_pixel))
        start = -(-first // step) * step  # first multiple of step in view, so labels stay put while panning
        return [(step, [i + 0.5 for i in range(start, last + 1, step)])]

    def tickStrings(self, values, scale, spacing):
        return [self.labels[int(v)] for v in values]


def _nice_step(n: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least n."""
    step = 1
    while step < n:
        step = step * 5 // 2 if str(step).startswith("2") else step * 2
    return step


class MaskLegend(pg.GraphicsWidgetAnchor, pg.GraphicsWidget):
    """A swatch of the masked-cell pattern and its meaning, pinned to a corner of the view."""

    def __init__(self, text: str):
        pg.GraphicsWidget.__init__(self)
        pg.GraphicsWidgetAnchor.__init__(self)
        self.text = text
        metrics = QFontMetrics(self.font())
        self.setFixedWidth(metrics.horizontalAdvance(text) + 38)
        self.setFixedHeight(max(metrics.height(), 16) + 10)

    def paint(self, p: QPainter, *args):
        p.setPen(QPen(QColor(120, 120, 120)))
        p.setBrush(QColor(255, 255, 255, 230))
        p.drawRoundedRect(self.boundingRect().adjusted(0, 0, -1, -1), 4, 4)
        swatch = QRectF(6, (self.size().height() - 16) / 2, 16, 16)
        for brush in (QBrush(MASK_FILL), QBrush(MASK_HATCH, Qt.BrushStyle.BDiagPattern)):
            p.fillRect(swatch, brush)
        p.setPen(QPen(QColor(30, 30, 30)))
        p.drawText(QRectF(28, 0, self.size().width() - 30, self.size().height()),
                   Qt.AlignmentFlag.AlignVCenter, self.text)


def _themed_layout_widget(owner: QWidget) -> pg.GraphicsLayoutWidget:
    """A GraphicsLayoutWidget in the colours of the application's palette rather than pyqtgraph's black."""
    widget = pg.GraphicsLayoutWidget()
    widget.setBackground(owner.palette().color(QPalette.ColorRole.Base))
    return widget


def _axis_pen(owner: QWidget) -> QPen:
    return pg.mkPen(owner.palette().color(QPalette.ColorRole.Text))


class PlotCanvas(QWidget):
    """What the views drawn on one pyqtgraph plot (`self.plot`, inside `self.canvas`) do alike."""

    def save_png(self, path: Path) -> None:
        if not self.canvas.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")

    def point_in_plot(self, scene_pos) -> QPointF | None:
        """A scene position in the plot's data coordinates, or None outside the plot."""
        view = self.plot.getViewBox()
        return view.mapSceneToView(scene_pos) if view.sceneBoundingRect().contains(scene_pos) else None


class HeatmapView(PlotCanvas):
    """One matrix, rows top to bottom; wheel zooms, drag pans, hover reads a cell out, a click emits it."""

    cell_clicked = Signal(int, int)  # row, column

    def __init__(self, parent=None):
        super().__init__(parent)
        self.values: np.ndarray | None = None  # the matrix shown, NaN where masked
        self.rows = self.columns = Axis("", [])
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setContentsMargins(*LABEL_MARGINS)
        self.canvas = _themed_layout_widget(self)
        pen = _axis_pen(self)
        self.axes = {side: TokenAxis(side) for side in ("left", "bottom")}
        tick_font = self.font()
        tick_font.setPointSizeF(tick_font.pointSizeF() * 0.9)
        for axis in self.axes.values():
            axis.setPen(pen)
            axis.setTextPen(pen)
            axis.setStyle(tickFont=tick_font)
        self.plot = self.canvas.addPlot(axisItems=self.axes)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.getViewBox().invertY(True)  # row 0 (the first query) on top, as a matrix is read
        self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(colorMap=pg.colormap.get(COLOUR_MAP), width=14, interactive=False,
                                        colorMapMenu=False, pen=pen)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.colorbar.axis.setTextPen(pen)
        self.colorbar.axis.enableAutoSIPrefix(False)
        self.backdrop: list[QGraphicsRectItem] = []
        self.hover = QGraphicsRectItem(0, 0, 1, 1)
        self.hover.setPen(pg.mkPen("#ff3b30", width=2))
        self.hover.setZValue(10)
        self.hover.hide()
        self.plot.addItem(self.hover)
        self.legend = MaskLegend("masked (future)")
        self.legend.setParentItem(self.plot.getViewBox())
        self.legend.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-8, 8))
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_mouse_clicked)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.readout)
        layout.addWidget(self.canvas, 1)

    def show_matrix(self, values: np.ndarray, rows: Axis, columns: Axis, *, mask: np.ndarray | None = None,
                    title: str = "", value_name: str = "attention weight") -> None:
        """Show `values` [len(rows), len(columns)]; cells where `mask` is True are drawn as masked."""
        self.values = _masked(values, mask)
        self.rows, self.columns = rows, columns
        n_rows, n_cols = self.values.shape
        self.axes["left"].set_labels([visible_token(t, LABEL_CHARS) if rows.tokens else t for t in rows.labels])
        self.axes["bottom"].set_labels([visible_token(t, LABEL_CHARS) if columns.tokens else t for t in columns.labels])
        self.plot.setLabel("left", rows.name)
        self.plot.setLabel("bottom", columns.name)
        self.plot.setTitle(title, color=self.palette().color(QPalette.ColorRole.Text).name())
        self.image.setImage(self.values, autoLevels=False)
        self.image.setRect(QRectF(0, 0, n_cols, n_rows))
        self.colorbar.setLevels(display_levels(values, mask))
        self.colorbar.axis.setLabel(value_name)
        for item in self.backdrop:
            self.plot.removeItem(item)
        self.backdrop = _mask_backdrop(self.plot, n_rows, n_cols) if mask is not None else []
        self.legend.setVisible(mask is not None)
        self.hover.hide()
        self.readout.setText("Hover over a cell to read its weight; scroll to zoom, drag to pan.")
        view = self.plot.getViewBox()
        view.setLimits(xMin=0, xMax=n_cols, yMin=0, yMax=n_rows,
                       minXRange=min(4, n_cols), minYRange=min(4, n_rows))
        self.reset_zoom()

    def reset_zoom(self) -> None:
        if self.values is not None:
            self.plot.getViewBox().autoRange(padding=0)

    def clear(self) -> None:
        self.values = None
        self.image.clear()
        self.axes["left"].set_labels([])
        self.axes["bottom"].set_labels([])
        self.plot.setTitle("")
        for item in self.backdrop:
            self.plot.removeItem(item)
        self.backdrop = []
        self.legend.hide()
        self.hover.hide()
        self.readout.setText(" ")

    def cell_at(self, scene_pos) -> tuple[int, int] | None:
        """(row, column) under a scene position, or None outside the matrix."""
        point = self.point_in_plot(scene_pos) if self.values is not None else None
        if point is None:
            return None
        row, col = math.floor(point.y()), math.floor(point.x())
        n_rows, n_cols = self.values.shape
        return (row, col) if 0 <= row < n_rows and 0 <= col < n_cols else None

    def describe_cell(self, row: int, col: int) -> str:
        weight = self.values[row, col]
        value = "masked (future): a token cannot attend to later tokens" if np.isnan(weight) else f"{weight:.4f}"
        return f"{self.rows.describe(row)}  →  {self.columns.describe(col)}:  {value}"

    def _on_mouse_moved(self, scene_pos) -> None:
        cell = self.cell_at(scene_pos)
        self.hover.setVisible(cell is not None)
        if cell is not None:
            self.hover.setPos(QPointF(cell[1], cell[0]))
            self.readout.setText(self.describe_cell(*cell))

    def _on_mouse_clicked(self, event) -> None:
        cell = self.cell_at(event.scenePos())
        if cell is not None and event.button() == Qt.MouseButton.LeftButton:
            self.cell_clicked.emit(*cell)


MAX_MAP_SIDE = 128  # a model view map's pixels a side: a longer text is averaged down (the maps are small)
MAX_MOSAIC_SIDE = 1200  # and the whole grid's: a bigger image would be scaled down in Qt's paint, on the GUI thread
COLOUR_TABLE = pg.colormap.get(COLOUR_MAP).getLookupTable(0.0, 1.0, 256, alpha=True)  # [256, 4] uint8


@dataclass
class Mosaic:
    """Every layer × head map coloured into one RGBA image, each from 0 to its own largest weight, the masked
    cells grey: the model view's picture, made by grid_mosaic on the worker thread so that the GUI thread only
    hands one image to Qt (a ViewBox per map took it 0.4 s for 12 × 12 heads)."""
    rgba: np.ndarray  # [rows, columns, 4] uint8; the gaps between maps transparent
    n_layer: int
    n_head: int
    side: int  # a map's side in the image's pixels: T, or less for a long text
    gap: int

    def rect(self, layer: int, head: int) -> QRectF:
        pitch = self.side + self.gap
        return QRectF(head * pitch, layer * pitch, self.side, self.side)

    def map_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(layer, head) of the map under image coordinates (x, y), None in a gap or outside."""
        pitch = self.side + self.gap
        layer, head = math.floor(y / pitch), math.floor(x / pitch)
        inside = 0 <= y - layer * pitch < self.side and 0 <= x - head * pitch < self.side
        return (layer, head) if inside and 0 <= layer < self.n_layer and 0 <= head < self.n_head else None

    def map_rgba(self, layer: int, head: int) -> np.ndarray:
        r = self.rect(layer, head)
        return self.rgba[int(r.top()):int(r.bottom()), int(r.left()):int(r.right())]


def grid_mosaic(weights: np.ndarray, causal: bool = True) -> Mosaic:
    """weights [L, H, T, T] -> the Mosaic of its maps, coloured as HeatmapView colours one (display_levels); a
    causal model's future keys masked."""
    n_layer, n_head, T, _ = weights.shape
    most = min(MAX_MAP_SIDE, MAX_MOSAIC_SIDE * 10 // (11 * max(n_layer, n_head)))  # 11/10: a map and its gap
    factor = math.ceil(T / most)
    side = math.ceil(T / factor)
    gap = max(2, side // 10)
    shown = np.where(future_mask(T), np.nan, weights.astype(np.float32)) if causal else weights.astype(np.float32)
    top = np.nanmax(shown[:, :, 1:] if T > 1 else shown, axis=(2, 3))  # as display_levels: the first row aside
    shown /= np.maximum(top, 1e-6)[..., None, None]
    if factor > 1:  # the mean of each factor × factor block; a block wholly in the future stays masked
        padded = np.full((n_layer, n_head, side * factor, side * factor), np.nan, np.float32)
        padded[:, :, :T, :T] = shown
        blocks = padded.reshape(n_layer, n_head, side, factor, side, factor)
        counts = np.isfinite(blocks).sum(axis=(3, 5))
        with np.errstate(invalid="ignore"):
            shown = np.where(counts > 0, np.nansum(blocks, axis=(3, 5)) / counts, np.nan)
    index = np.clip(np.nan_to_num(shown) * 255 + 0.5, 0, 255).astype(np.uint8)
    maps = COLOUR_TABLE[index]  # [L, H, side, side, 4]
    maps[np.isnan(shown)] = (*MASK_FILL.getRgb()[:3], 255)
    pitch = side + gap
    image = np.zeros((n_layer, pitch, n_head, pitch, 4), np.uint8)
    image[:, :side, :, :side] = maps.transpose(0, 2, 1, 3, 4)
    rgba = image.reshape(n_layer * pitch, n_head * pitch, 4)[:-gap, :-gap]
    return Mosaic(np.ascontiguousarray(rgba), n_layer, n_head, side, gap)


class ModelGridView(PlotCanvas):
    """Every layer × head as a small map (bertviz's model view), all in one image; clicking one emits its
    (layer, head)."""

    head_clicked = Signal(int, int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mosaic: Mosaic | None = None
        self.readout = QLabel(" ")
        self.readout.setContentsMargins(*LABEL_MARGINS)
        self.canvas = _themed_layout_widget(self)
        self.axes = {side: pg.AxisItem(side, pen=pg.mkPen(None), textPen=_axis_pen(self)) for side in ("top", "left")}
        for axis in self.axes.values():
            axis.setStyle(tickLength=0)  # labels only: the maps are their own marks
        self.axes["left"].setWidth(QFontMetrics(self.font()).horizontalAdvance("layer 00") + 12)
        self.plot = self.canvas.addPlot(axisItems=self.axes)
        self.plot.hideAxis("bottom")
        self.plot.showAxis("top")
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        view = self.plot.getViewBox()
        view.invertY(True)
        view.setAspectLocked(True)  # square maps
        view.setMouseEnabled(False, False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.frame = QGraphicsRectItem()  # the hover highlight around a map
        self.frame.setPen(pg.mkPen("#ff3b30", width=3))
        self.frame.hide()
        self.plot.addItem(self.frame)
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.canvas.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        header = QHBoxLayout()
        header.addWidget(self.readout, 1)
        self.scale_note = QLabel("each map coloured from 0 to its own largest weight", objectName="hint")
        self.scale_note.setContentsMargins(*LABEL_MARGINS)
        header.addWidget(self.scale_note)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.canvas, 1)

    def show_mosaic(self, mosaic: Mosaic) -> None:
        """Show the maps grid_mosaic made; the labels name each map's layer and head."""
        self.mosaic = mosaic
        self.image.setImage(mosaic.rgba, autoLevels=False, levels=None)
        centres = [(i * (mosaic.side + mosaic.gap) + mosaic.side / 2) for i in range(max(mosaic.n_layer,
                                                                                           mosaic.n_head))]
        worded = mosaic.n_head <= WORDED_HEADS
        self.axes["top"].setTicks([[(centres[h], f"head {h + 1}" if worded else str(h + 1))
                                    for h in range(mosaic.n_head)]])
        self.axes["top"].setLabel("" if worded else "head")
        self.axes["top"].showLabel(not worded)
        self.axes["left"].setTicks([[(centres[layer], f"layer {layer + 1}") for layer in range(mosaic.n_layer)]])
        height, width = mosaic.rgba.shape[:2]
        self.plot.getViewBox().setRange(QRectF(0, 0, width, height), padding=0.02)
        self.frame.hide()
        self.readout.setText("Click a map to open it large.")

    def clear(self) -> None:
        self.mosaic = None
        self.image.clear()
        for axis in self.axes.values():
            axis.setTicks([[]])
        self.frame.hide()
        self.readout.setText(" ")

    def map_at(self, scene_pos) -> tuple[int, int] | None:
        """(layer, head) of the map under a scene position, or None."""
        point = self.point_in_plot(scene_pos) if self.mosaic is not None else None
        return None if point is None else self.mosaic.map_at(point.x(), point.y())

    def _on_mouse_moved(self, scene_pos) -> None:
        hit = self.map_at(scene_pos)
        self.frame.setVisible(hit is not None)
        if hit is not None:
            self.frame.setRect(self.mosaic.rect(*hit))
            self.readout.setText(f"layer {hit[0] + 1}, head {hit[1] + 1}: click to open it large")

    def _on_mouse_clicked(self, event) -> None:
        hit = self.map_at(event.scenePos())
        if hit is not None and event.button() == Qt.MouseButton.LeftButton:
            self.head_clicked.emit(*hit)

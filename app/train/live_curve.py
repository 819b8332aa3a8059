"""Plot lines that grow at their end several times a second, at the cost of repainting a narrow strip.

Setting new data on a pyqtgraph item repaints the whole plot under it, and the window's CPU is taken from training,
which shares the cores. So a live curve is two items: its history, which Qt keeps as a picture (redrawn only when
the view moves or the history grows), and a short tail with the newest points. A refresh changes only the tail, and
Qt repaints only the strip under it, pasting the history's picture there, for a refresh far cheaper than plain
setData on one item (docs/performance.md, the eighth look).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem

TAIL_PIXELS = 100  # the tail joins the history once it is this wide...
TAIL_POINTS = 500  # ...or holds this many points (a fast model adds many between refreshes)


def keep_as_picture(item: pg.PlotDataItem) -> pg.PlotDataItem:
    """Let Qt paint the item from a cached picture until the item itself changes."""
    for part in (item.curve, item.scatter):
        part.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return item


class LiveCurve:
    """A line as a cached history item (with the plot's downsampling and clipping) and a light tail item."""

    def __init__(self, pen, antialias: bool, points_per_pixel: float):
        self.history = keep_as_picture(pg.PlotDataItem(pen=pen, antialias=antialias, skipFiniteCheck=True,
                                                       autoDownsampleFactor=points_per_pixel))
        self.tail = Tail(pg.mkPen(pen), antialias)
        self._history_size = 0
        self._x, self._y = np.empty(0), np.empty(0)

    @property
    def items(self) -> tuple[pg.GraphicsObject, ...]:
        return self.history, self.tail

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """All the points drawn, x and y."""
        return self._x, self._y

    def replace(self, x: np.ndarray, y: np.ndarray) -> None:
        """Draw these points instead of those drawn before (a new run, another x axis, other smoothing)."""
        self._x, self._y = x, y
        self.history.setData(x, y)
        self.tail.set_points(x[:0], y[:0])
        self._history_size = len(x)

    def extend(self, x: np.ndarray, y: np.ndarray) -> None:
        """Draw these points, which begin with the points drawn before, unchanged."""
        start = max(self._history_size - 1, 0)  # the tail's width counts from the history's last point
        pixels_per_unit = self._pixels_per_unit()
        if len(x) <= start or len(x) - start > TAIL_POINTS or (x[-1] - x[start]) * pixels_per_unit > TAIL_PIXELS:
            self.replace(x, y)
            return
        self._x, self._y = x, y
        self.tail.set_points(*self._drawn_like_the_history(x[self._history_size:], y[self._history_size:],
                                                           pixels_per_unit))

    def _drawn_like_the_history(self, x: np.ndarray, y: np.ndarray,
                                pixels_per_unit: float) -> tuple[np.ndarray, np.ndarray]:
        """New points as the history item would draw them: mapped to a log axis, downsampled alike (else a noisy
        tail is a darker band), and joined to where the history's drawn line ends (short of its last point, when
        downsampled)."""
        options = self.history.opts
        if options["logMode"][1]:
            y = np.log10(y)
        if options["autoDownsample"]:
            bucket = self._bucket_size(options["autoDownsampleFactor"], pixels_per_unit)
            x, y = _downsampled(x, y, bucket, options["downsampleMethod"])
        drawn_x, drawn_y = self.history.getData()
        if drawn_x is not None and len(drawn_x):
            x, y = np.concatenate(([drawn_x[-1]], x)), np.concatenate(([drawn_y[-1]], y))
        return x, y

    def _bucket_size(self, points_per_pixel: float, pixels_per_unit: float) -> int:
        """Points per bucket, as pyqtgraph's automatic downsampling chooses for the whole curve."""
        x = self._x
        if not pixels_per_unit or len(x) < 2 or x[-1] == x[0]:
            return 1
        points_per_unit = (len(x) - 1) / (x[-1] - x[0])
        return max(1, int(points_per_unit / (pixels_per_unit * points_per_pixel)))

    def _pixels_per_unit(self) -> float:
        """How many pixels wide one unit of x is on screen (0 before the curve is in a plot)."""
        view = self.history.getViewBox()
        if view is None:
            return 0.0
        (left, right), _ = view.viewRange()
        return view.width() / (right - left)


def _downsampled(x: np.ndarray, y: np.ndarray, bucket: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """pyqtgraph's "mean" or "peak" downsampling: each `bucket` points become their mean, or their highest and
    lowest value, at the bucket's middle (the last bucket may be short). The newest point is kept as it is, so that
    the line reaches it."""
    if bucket == 1 or len(x) < 3:
        return x, y
    starts = np.arange(0, len(x) - 1, bucket)
    ends = np.append(starts[1:], len(x) - 1)
    middles, body = x[(starts + ends) // 2], y[:-1]
    if method == "mean":
        xs, ys = middles, np.add.reduceat(body, starts) / (ends - starts)
    else:
        xs = np.repeat(middles, 2)
        ys = np.stack((np.maximum.reduceat(body, starts), np.minimum.reduceat(body, starts)), axis=1).ravel()
    return np.append(xs, x[-1]), np.append(ys, y[-1])


class Tail(pg.GraphicsObject):
    """A line through a few points, and nothing else: pyqtgraph's curve items spend more time on their options
    (and on their bounds, which Qt asks for several times a paint) than this spends drawing."""

    def __init__(self, pen: QPen, antialias: bool):
        super().__init__()
        self.pen, self.antialias = pen, antialias
        self.x = np.empty(0)
        self._path, self._bounds = QPainterPath(), QRectF()
        self._pad: tuple[float, float] | None = None  # the pen's width past the points, in data units

    def set_points(self, x: np.ndarray, y: np.ndarray) -> None:
        self.prepareGeometryChange()
        self.x = x
        self._path = pg.arrayToQPath(x, y, connect="finite") if len(x) else QPainterPath()
        self._bounds = self._padded_bounds()
        self.update()

    def _padded_bounds(self) -> QRectF:
        if self._pad is None:  # the pen's width is in pixels
            pixels = self.pen.widthF() + 1
            self._pad = pixels * (self.pixelWidth() or 0), pixels * (self.pixelHeight() or 0)
        pad_x, pad_y = self._pad
        return self._path.boundingRect().adjusted(-pad_x, -pad_y, pad_x, pad_y)

    def viewTransformChanged(self) -> None:  # noqa: N802 - pyqtgraph's name
        super().viewTransformChanged()
        self.prepareGeometryChange()
        self._pad = None
        self._bounds = self._padded_bounds()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def paint(self, painter: QPainter, _option, _widget) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, self.antialias)
        painter.setPen(self.pen)
        painter.drawPath(self._path)


class MarkerSeries:
    """Points that change now and then (validation losses): one item, kept as a picture between changes. Has a
    LiveCurve's interface, so that the plots can treat every curve alike."""

    def __init__(self, pen=None, **options):
        """`pen`: a line joining the points (none by default: markers alone)."""
        self.item = keep_as_picture(pg.PlotDataItem(pen=pen, antialias=True, **options))

    @property
    def items(self) -> tuple[pg.GraphicsObject, ...]:
        return (self.item,)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.item.getOriginalDataset()

    def replace(self, x: np.ndarray, y: np.ndarray) -> None:
        self.item.setData(x, y)

    extend = replace

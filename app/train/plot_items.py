"""pyqtgraph's plot, view and axis items, with their bounds answered (and a view's nothing painted) cheaply.

Qt asks every item under a repainted region for its bounding rectangle, several times a paint, and pyqtgraph
answers in Python, for each strip of the loss plot repainted at every refresh: CPU taken from training, which shares
the cores (docs/performance.md, the eighth look). A plot or view box is a plain rectangle, so Qt's own C++ answers
(for its bounds, and for its shape, which clips what it holds) are the same; an axis, whose grid lines cover its
view, keeps its answer until either is resized (or its grid is switched).

A plot's title spans the plot, its axis too, and never widens it: pyqtgraph's made the plot at least as wide as
the title's text plus the axis, and a row of small plots then overflowed its window (docs/screenshots, issue #18).
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsWidget


class TitleLabel(pg.LabelItem):
    """A title that asks for its text's width but makes do with less (the plot clips what sticks out)."""

    def updateMin(self) -> None:  # noqa: N802 - pyqtgraph's name
        super().updateMin()
        self.setMinimumWidth(0)


class PlotItem(pg.PlotItem):
    boundingRect = QGraphicsWidget.boundingRect  # noqa: N815 - Qt's name
    shape = QGraphicsWidget.shape  # asked at every paint too, to clip the plot's items

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.layout.removeItem(self.titleLabel)
        self.titleLabel.setParentItem(None)
        self.titleLabel = TitleLabel("", size="11pt", parent=self)
        self.layout.addItem(self.titleLabel, 0, 0, 1, 3)  # over the left axis as well as the view
        self.setTitle(None)  # hidden until set, as pyqtgraph's


class ViewBox(pg.ViewBox):
    boundingRect = QGraphicsWidget.boundingRect  # noqa: N815 - Qt's name
    shape = QGraphicsWidget.shape
    paint = QGraphicsWidget.paint  # pyqtgraph's draws a border, which these views have none of: paint nothing


class AxisItem(pg.AxisItem):
    def __init__(self, orientation: str):
        super().__init__(orientation)
        self._bounds_for = None  # what the kept bounds were computed for: geometries and grid
        self._bounds = None

    def boundingRect(self):  # noqa: N802 - Qt's name
        view = self.linkedView()
        key = (self.geometry(), None if view is None else view.geometry(), self.grid)
        if key != self._bounds_for:
            self._bounds_for, self._bounds = key, super().boundingRect()
        return self._bounds


def add_plot(layout: pg.GraphicsLayout, row: int, col: int, colspan: int = 1) -> PlotItem:
    """A plot with these items (the left and bottom axes shown), in the layout's cell."""
    plot = PlotItem(viewBox=ViewBox(), axisItems={side: AxisItem(side) for side in ("left", "bottom")})
    layout.addItem(plot, row=row, col=col, colspan=colspan)
    return plot

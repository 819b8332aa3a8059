"""The runs table: one row per run, its settings and results in columns, sorted, filtered and compared the way
W&B's and TensorBoard's HParams views compare runs. The rows come from lmcore.run_table; this is only the view."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (QAbstractTableModel, QEvent, QItemSelection, QItemSelectionModel, QModelIndex, QObject,
                            QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal)
from PySide6.QtGui import QAction, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel,
                               QLineEdit, QMenu, QPushButton, QTableView, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from lmcore.run_table import COLUMNS, MISSING_TEXT, Column, RunRow, config_diff, mixed_tokenizers

from ..common.style import BORDER, MUTED, PANEL, TEXT, status_icon
from ..common.text import run_label
from ..common import widgets

SORT_ROLE = Qt.ItemDataRole.UserRole  # the value behind a cell: numbers sort as numbers
RUN_PATH_ROLE = Qt.ItemDataRole.UserRole + 1
NUMERIC = ("int", "count", "loss", "lr", "duration", "date")
HEADER_SPARE = 14  # pixels beside a column's title: the header's padding and the sort arrow
NAME_WIDTH = 210  # the Run column's least width when the others leave less (its names then elided)
# As the list's look (app.common.style), which styles tree widgets only
VIEW_STYLE = (f"QTableView {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; "
              f"alternate-background-color: #f8f9fb; }} "
              f"QTableView::item:selected {{ background: #dce7fb; color: {TEXT}; }} "
              # The sort arrow above the title, as Windows draws it, costs each column no width
              f"QHeaderView::section {{ padding: 7px 6px 3px 6px; }} "
              f"QHeaderView::up-arrow, QHeaderView::down-arrow {{ subcontrol-origin: margin; "
              f"subcontrol-position: top center; width: 9px; height: 6px; top: 1px; }}")
FAIR_COLUMN = "bits_per_char"  # the one loss that compares runs whose tokenizers differ
ModelIndex = QModelIndex | QPersistentModelIndex


TOP_LEVEL = QModelIndex()  # the invalid index: a table's rows hang from it

class RunsTableModel(QAbstractTableModel):
    """Rows of lmcore.run_table.RunRow. The first column carries the tick box (runs overlaid on the plots) and the
    status dot; set_rows updates rows in place, so a refresh keeps the view's selection, sort and column widths."""

    tick_changed = Signal(object, bool)  # Path, ticked: the user ticked or unticked a run's box

    def __init__(self, columns: tuple[Column, ...] = COLUMNS, parent=None):
        super().__init__(parent)
        self.columns = columns
        self.rows: list[RunRow] = []
        self.ticked: set[Path] = set()
        self.statuses: dict[Path, str] = {}  # live statuses that override what the folder says (the run training here)

    # ---- feeding ---------------------------------------------------------------------------------
    def set_rows(self, rows: list[RunRow]) -> None:
        new = {row.path: row for row in rows}
        for i in reversed(range(len(self.rows))):  # from the bottom, so the indexes still to visit hold
            if self.rows[i].path not in new:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self.rows[i]
                self.endRemoveRows()
        kept = {row.path for row in self.rows}
        self.rows = [new[row.path] for row in self.rows]
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(self.columns) - 1))
        order = {row.path: i for i, row in enumerate(rows)}
        for row in rows:  # each where `rows` has it: unsorted, the table lists runs newest first, as the list does
            if row.path not in kept:
                position = sum(order[other.path] < order[row.path] for other in self.rows)
                self.beginInsertRows(QModelIndex(), position, position)
                self.rows.insert(position, row)
                self.endInsertRows()

    def set_ticked(self, ticked: set[Path]) -> None:
        if ticked != self.ticked:
            self.ticked = set(ticked)
            if self.rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, 0),
                                      [Qt.ItemDataRole.CheckStateRole])

    def column_of(self, key: str) -> int:
        return next(i for i, column in enumerate(self.columns) if column.key == key)

    def row_of(self, path: Path) -> int | None:
        return next((i for i, row in enumerate(self.rows) if row.path == path), None)

    def status(self, row: RunRow) -> str:
        return self.statuses.get(row.path) or row.values.get("status") or "unknown"

    # ---- QAbstractTableModel -------------------------------------------------------------------------
    def rowCount(self, parent: ModelIndex = TOP_LEVEL) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: ModelIndex = TOP_LEVEL) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].header
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.columns[section].tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole:  # over the column's values, as they are aligned
            return self._alignment(self.columns[section])
        return None

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        return flags | Qt.ItemFlag.ItemIsUserCheckable if index.column() == 0 else flags

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row, column = self.rows[index.row()], self.columns[index.column()]
        value = row.values.get(column.key)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == SORT_ROLE:
            return self.status(row) if column.key == "status" else value
        if role == RUN_PATH_ROLE:
            return str(row.path)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return self._alignment(column)
        if role == Qt.ItemDataRole.ForegroundRole and self._text(row, column) == MISSING_TEXT:
            return QColor(MUTED)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if index.column() == 0 and role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if row.path in self.ticked else Qt.CheckState.Unchecked
        if index.column() == 0 and role == Qt.ItemDataRole.DecorationRole:
            return status_icon(self.status(row))
        return None

    def setData(self, index: ModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if index.column() != 0 or role != Qt.ItemDataRole.CheckStateRole or not index.isValid():
            return False
        ticked = Qt.CheckState(value) == Qt.CheckState.Checked  # an int or the enum, by PySide6 version
        self.tick_changed.emit(self.rows[index.row()].path, ticked)
        return True

    @staticmethod
    def _alignment(column: Column) -> Qt.AlignmentFlag:
        """Numbers to the right, so their digits line up; text to the left."""
        horizontal = Qt.AlignmentFlag.AlignRight if column.format in NUMERIC else Qt.AlignmentFlag.AlignLeft
        return horizontal | Qt.AlignmentFlag.AlignVCenter

    def _text(self, row: RunRow, column: Column) -> str:
        if column.key == "name":
            return run_label(row.path.name)
        if column.key == "status":
            return self.status(row)
        return row.text(column.key)

    def _tooltip(self, row: RunRow, column: Column) -> str:
        if column.key == "name":
            return (f"{row.path}\n{self.status(row)}\n"
                    "Tick to compare on the plots; select two (Ctrl-click) to compare their configs.")
        if column.key == FAIR_COLUMN and row.values.get(FAIR_COLUMN) is None:
            return "Not known: bits per character need the whole validation split evaluated (train.eval_batches = 0)."
        return f"{column.header}: {self._text(row, column)}"


class RunsFilterProxy(QSortFilterProxyModel):
    """Sorts by each cell's value, numbers as numbers and missing values last in either order; keeps the rows in
    which every word of the filter text occurs in some shown cell."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.words: list[str] = []
        self.hidden_columns: set[int] = set()

    def set_filter_text(self, text: str) -> None:
        with self._filter_change():
            self.words = text.casefold().split()

    def set_hidden_columns(self, hidden: set[int]) -> None:
        with self._filter_change():
            self.hidden_columns = set(hidden)

    @contextlib.contextmanager
    def _filter_change(self):
        """Filter the rows again after the block changes what passes (Qt 6.10 brackets the change; before, the
        rows are invalidated after it)."""
        bracketed = hasattr(self, "endFilterChange")
        if bracketed:
            self.beginFilterChange()
        yield
        if bracketed:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        if not self.words:
            return True
        model = self.sourceModel()
        cells = [str(model.index(source_row, column, source_parent).data(Qt.ItemDataRole.DisplayRole)).casefold()
                 for column in range(model.columnCount(source_parent)) if column not in self.hidden_columns]
        return all(any(word in cell for cell in cells) for word in self.words)

    def lessThan(self, left: ModelIndex, right: ModelIndex) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            # Qt sorts descending by swapping the arguments: answering by the order keeps missing values last.
            return a is not b and (a is None) == (self.sortOrder() == Qt.SortOrder.DescendingOrder)
        if _is_number(a) and _is_number(b):
            return a < b
        return str(a).casefold() < str(b).casefold()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def setting_text(value: Any) -> str:
    """A config value as config.toml writes it, near enough: true/false, lists in brackets, '–' when unset."""
    if value is None:
        return MISSING_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(map(setting_text, value)) + "]"
    return str(value)


def style_table(view: QTableView) -> None:
    """The look of the runs table and of the config diff: rows as the list draws them, no grid."""
    view.setStyleSheet(VIEW_STYLE)
    view.setShowGrid(False)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().lineSpacing() + 10)


class ConfigDiffDialog(QDialog):
    """The settings in which two runs differ: one row a setting, its value in run A and in run B."""

    def __init__(self, rows: tuple[RunRow, RunRow], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Compare configs")
        a, b = rows
        self.diff = config_diff(a.path, b.path)
        self.table = QTableWidget(len(self.diff), 3)
        self.table.setHorizontalHeaderLabels(["Setting", "Run A", "Run B"])
        for i, (key, value_a, value_b) in enumerate(self.diff):
            for column, text in enumerate((key, setting_text(value_a), setting_text(value_b))):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(i, column, item)
        style_table(self.table)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)  # over the values
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2):  # the two runs share what the keys leave
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)

        names = QLabel(f"Run A: {run_label(a.path.name)}\nRun B: {run_label(b.path.name)}")
        names.setToolTip(f"A: {a.path}\nB: {b.path}")
        summary = QLabel(f"{len(self.diff)} settings differ." if self.diff else "The two runs have the same settings.")
        summary.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.addWidget(names)
        layout.addWidget(summary)
        if mixed_tokenizers(rows):
            fair = QLabel(f"They split text with different tokenizers, so compare bits per character, not the loss "
                          f"per token: A {a.text(FAIR_COLUMN)}, B {b.text(FAIR_COLUMN)}.")
            fair.setWordWrap(True)
            fair.setObjectName("fairHint")
            layout.addWidget(fair)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 420)

    def differing_keys(self) -> list[str]:
        return [self.table.item(i, 0).text() for i in range(self.table.rowCount())]


class RunsTable(QWidget):
    """The table with what acts on it: a filter box, a Columns… menu and Compare configs (two runs selected)."""

    compare_requested = Signal()
    columns_changed = Signal(list)  # [column key]: the shown columns, after the user changed them

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = RunsTableModel(parent=self)
        self.proxy = RunsFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # unsorted until clicked
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        style_table(self.view)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.horizontalHeader().setHighlightSections(False)
        self.view.horizontalHeader().setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter runs…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip("Show only the runs in which every word occurs in some shown cell.")
        self.columns_button = QPushButton("Columns…")
        self.columns_button.setToolTip("Choose the columns to show.")
        self.columns_menu = QMenu(self)
        self.column_actions: dict[str, QAction] = {}
        for kind, title in (("run", "Run"), ("setting", "Settings"), ("result", "Results")):
            self.columns_menu.addSection(title)
            for column in COLUMNS:
                if column.kind == kind and column.key != "name":  # the name says which run a row is: always shown
                    action = self.columns_menu.addAction(column.header)
                    action.setCheckable(True)
                    action.setToolTip(column.tooltip)
                    action.toggled.connect(self._on_column_toggled)
                    self.column_actions[column.key] = action
        self.columns_menu.setToolTipsVisible(True)
        self.columns_button.setMenu(self.columns_menu)
        # Short, as the window must fit a 1280-pixel screen with the table beside the tabs at its least width
        self.compare_button = QPushButton("Compare…")
        self.compare_button.setToolTip("Compare configs: select two runs (Ctrl-click) to list the settings in which "
                                       "they differ.")
        self.compare_button.setEnabled(False)
        self.fair_hint = QLabel("Runs with different tokenizers: compare Bits/char, not the loss per token.")
        self.fair_hint.setObjectName("hint")
        self.fair_hint.setWordWrap(True)
        self.fair_hint.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(widgets.row((self.filter_edit, 1), self.columns_button, self.compare_button))
        layout.addWidget(self.view, 1)
        layout.addWidget(self.fair_hint)

        self.filter_edit.textChanged.connect(self.proxy.set_filter_text)
        self.compare_button.clicked.connect(self.compare_requested)
        self.view.selectionModel().selectionChanged.connect(self._update_compare)
        self.view.horizontalHeader().customContextMenuRequested.connect(
            lambda position: self.columns_menu.exec(self.view.horizontalHeader().mapToGlobal(position)))
        self._shown = [column.key for column in COLUMNS if column.shown]  # the user's choice
        self._sized = False
        self._name_width = NAME_WIDTH  # what the names need (fit_columns measures it)
        self.view.viewport().installEventFilter(self)
        self.set_shown_columns(self._shown)

    # ---- rows ------------------------------------------------------------------------------------
    def set_rows(self, rows: list[RunRow]) -> None:
        added = {row.path for row in rows} - {row.path for row in self.model.rows}
        self.model.set_rows(rows)
        self._apply_columns()
        if added or not self._sized:  # fit new rows' text; otherwise keep the widths the user dragged
            self.fit_columns()
            self._sized = bool(rows)
        self._update_compare()

    def fit_columns(self, indexes: Iterable[int] | None = None) -> None:
        """Each column (of `indexes`, else all) as wide as its widest cell or its title. Qt's own fitting keeps a
        header's height free beside every title for the sort arrow, which doubled the narrow columns: the table
        then needed a scroll bar at 1000 pixels."""
        font = QFont(self.view.horizontalHeader().font())
        font.setWeight(QFont.Weight.DemiBold)  # the style sheet's header weight
        metrics = QFontMetrics(font)
        for i in range(len(self.model.columns)) if indexes is None else indexes:
            column = self.model.columns[i]
            width = max(self.view.sizeHintForColumn(i), metrics.horizontalAdvance(column.header) + HEADER_SPARE)
            if column.key == "name":
                self._name_width = width
            else:
                self.view.setColumnWidth(i, width)
        self._fit_name_column()

    def _fit_name_column(self) -> None:
        """The Run column takes the width the other columns leave, so the rows fill the view; when they leave
        less than NAME_WIDTH, that much (or what the names need, if less), the names elided and a scroll bar."""
        header, name = self.view.horizontalHeader(), self.model.column_of("name")
        others = sum(header.sectionSize(i) for i in range(header.count())
                     if i != name and not header.isSectionHidden(i))
        free = self.view.viewport().width() - others
        self.view.setColumnWidth(name, max(free, min(self._name_width, NAME_WIDTH)))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_name_column()  # the viewport's width is known only once laid out, and changes with the window
        return super().eventFilter(watched, event)

    def rows(self) -> list[RunRow]:
        """The rows shown, in the order shown."""
        return [self.model.rows[self.proxy.mapToSource(self.proxy.index(i, 0)).row()]
                for i in range(self.proxy.rowCount())]

    # ---- selection -------------------------------------------------------------------------------
    def selected_runs(self) -> list[Path]:
        """The selected runs, top to bottom as shown."""
        rows = sorted(index.row() for index in self.view.selectionModel().selectedRows())
        return [Path(self.proxy.index(row, 0).data(RUN_PATH_ROLE)) for row in rows]

    def current_run(self) -> Path | None:
        """The selected run that has the focus (the last clicked), else the first selected."""
        selected = self.selected_runs()
        current = self.view.currentIndex()
        if current.isValid() and Path(current.siblingAtColumn(0).data(RUN_PATH_ROLE)) in selected:
            return Path(current.siblingAtColumn(0).data(RUN_PATH_ROLE))
        return selected[0] if selected else None

    def select_runs(self, runs: list[Path]) -> None:
        selection = QItemSelection()
        current = None
        for run in runs:
            source_row = self.model.row_of(Path(run))
            if source_row is None:
                continue
            index = self.proxy.mapFromSource(self.model.index(source_row, 0))
            if index.isValid():
                selection.select(index, index.siblingAtColumn(self.proxy.columnCount() - 1))
                current = current or index
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.view.selectionModel().select(selection, flags)
        if current is not None:
            self.view.selectionModel().setCurrentIndex(current, QItemSelectionModel.SelectionFlag.NoUpdate)
            self.view.scrollTo(current)

    def compared_rows(self) -> tuple[RunRow, RunRow] | None:
        runs = self.selected_runs()
        if len(runs) != 2:
            return None
        rows = {row.path: row for row in self.model.rows}
        return rows[runs[0]], rows[runs[1]]

    def _update_compare(self, *_) -> None:
        self.compare_button.setEnabled(len(self.selected_runs()) == 2)

    # ---- columns ---------------------------------------------------------------------------------
    def shown_columns(self) -> list[str]:
        return list(self._shown)

    def set_shown_columns(self, keys: list[str]) -> None:
        """The user's choice of columns (unknown keys dropped: a setting from another version)."""
        self._shown = ["name", *(column.key for column in COLUMNS if column.key in keys and column.key != "name")]
        for key, action in self.column_actions.items():
            action.blockSignals(True)
            action.setChecked(key in self._shown)
            action.blockSignals(False)
        self._apply_columns()

    def _on_column_toggled(self) -> None:
        self.set_shown_columns([key for key, action in self.column_actions.items() if action.isChecked()])
        self.columns_changed.emit(self.shown_columns())

    def _apply_columns(self) -> None:
        """Hide what the user hid, except bits per character while the runs' tokenizers differ: then it is the one
        loss that compares them, so it shows whatever the choice."""
        mixed = mixed_tokenizers(self.model.rows)
        shown = set(self._shown) | ({FAIR_COLUMN} if mixed else set())
        fair = self.column_actions[FAIR_COLUMN]
        fair.setEnabled(not mixed)
        header_text = self.model.columns[self.model.column_of(FAIR_COLUMN)].header
        fair.setText(f"{header_text} (shown: tokenizers differ)" if mixed else header_text)
        self.fair_hint.setVisible(mixed)
        header = self.view.horizontalHeader()
        hidden = {i for i, column in enumerate(self.model.columns) if column.key not in shown}
        appearing = [i for i in range(header.count()) if header.isSectionHidden(i) and i not in hidden]
        for i in range(header.count()):
            header.setSectionHidden(i, i in hidden)
        self.proxy.set_hidden_columns(hidden)
        self.fit_columns(appearing)  # a hidden column was never measured

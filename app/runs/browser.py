"""The runs browser: every run in the runs folder, with what it is and how it went, and what can be done to it."""
from __future__ import annotations

import contextlib
import json
import traceback
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QRect, QSettings, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFont, QFontMetrics
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QInputDialog, QLabel, QLayout, QMenu, QMessageBox,
                               QPushButton, QSizePolicy, QStackedWidget, QStyle, QStyledItemDelegate,
                               QStyleOptionViewItem, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from lmcore.errors import LMCoreError
from lmcore.run_table import RunTable
from lmcore.runs import RunInfo, delete_run, list_runs, rename_run

from ..common.style import MUTED, status_icon
from ..common.text import FAMILY_NAMES, format_count, label_parts
from ..common.widgets import row
from .interop import ExportDialog
from .table import ConfigDiffDialog, RunsTable

RESUMABLE = ("stopped", "failed", "interrupted")
FINE_TUNABLE = ("finished", "stopped")
PATH_ROLE = Qt.ItemDataRole.UserRole
DETAILS_ROLE = Qt.ItemDataRole.UserRole + 1  # the second line: status, model, size, best validation loss
VIEW_SETTING = "runs/view"  # "list" or "table"
COLUMNS_SETTING = "runs/table_columns"  # JSON list of the table's shown column keys
NAME_LEAST = 100  # px of a run's name the list shows before the date beside it


class RunDelegate(QStyledItemDelegate):
    """Two lines per run, so a narrow sidebar shows everything: the name, then status, model, size and loss."""

    def paint(self, painter, option, index) -> None:
        # An exception cannot go back through Qt's painting: one escaping here crashed the app (issue 23).
        # Show the row as Qt would rather than lose it.
        try:
            self._paint_two_lines(painter, QStyleOptionViewItem(option), index)
        except Exception:  # noqa: BLE001 - any bug here must not take the app down
            traceback.print_exc()
            super().paint(painter, option, index)

    def _paint_two_lines(self, painter, option, index) -> None:
        self.initStyleOption(option, index)
        name, option.text = option.text, ""
        widget = option.widget
        style = widget.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, widget)  # background, tick box, status dot
        text_rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, option, widget)
        line = option.fontMetrics.lineSpacing()
        top = text_rect.top() + (text_rect.height() - 2 * line) // 2
        bold = QFont(option.font)
        bold.setWeight(QFont.Weight.DemiBold)
        base, when = label_parts(name)
        when_width = option.fontMetrics.horizontalAdvance(when) + 6 if when else 0
        if text_rect.width() - when_width < min(QFontMetrics(bold).horizontalAdvance(base), NAME_LEAST):
            when, when_width = "", 0  # a narrow sidebar: the name first (the date is in the tooltip and the table)
        first_line = QRect(text_rect.left(), top, text_rect.width(), line)
        painter.save()
        try:
            painter.setFont(bold)
            painter.drawText(first_line.adjusted(0, 0, -when_width, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             QFontMetrics(bold).elidedText(base, Qt.TextElideMode.ElideMiddle, text_rect.width() - when_width))
            painter.setFont(option.font)
            painter.setPen(QColor(MUTED))
            painter.drawText(first_line, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, when)
            details = index.data(DETAILS_ROLE) or ""
            painter.drawText(QRect(text_rect.left(), top + line, text_rect.width(), line),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             option.fontMetrics.elidedText(details, Qt.TextElideMode.ElideRight, text_rect.width()))
        finally:  # the fallback paints with the painter as it was
            painter.restore()

    def sizeHint(self, option, index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width(), 2 * option.fontMetrics.lineSpacing() + 10)


class ButtonRows(QLayout):
    """Buttons in as many rows as the width needs, each row filled edge to edge: a wide sidebar lines them up in
    two rows, a narrow one (a 1024-pixel screen) stacks them, rather than the buttons setting its width."""

    SPACING = 6

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._items: list = []

    def addItem(self, item) -> None:  # noqa: N802 - Qt's name
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int):  # noqa: N802
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation.Horizontal

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802 - all in one row
        shown = self._shown()
        width = sum(item.sizeHint().width() for item in shown) + self.SPACING * max(len(shown) - 1, 0)
        return QSize(width, self._row_height(shown))

    def minimumSize(self) -> QSize:  # noqa: N802 - one button a row
        shown = self._shown()
        return QSize(max((item.minimumSize().width() for item in shown), default=0), self._row_height(shown))

    def _shown(self) -> list:
        return [item for item in self._items if not item.isEmpty()]

    @staticmethod
    def _row_height(items) -> int:
        return max((item.sizeHint().height() for item in items), default=0)

    def _arrange(self, rect: QRect, move: bool) -> int:
        """Fill rows from the left with the buttons that fit, widen each row's buttons to its edge; the height."""
        rows: list[list] = [[]]
        used = 0
        for item in self._shown():
            width = item.sizeHint().width()
            if rows[-1] and used + self.SPACING + width > rect.width():
                rows.append([])
                used = 0
            used += (self.SPACING if rows[-1] else 0) + width
            rows[-1].append(item)
        height = self._row_height(self._shown())
        top = rect.y()
        for items in (r for r in rows if r):
            spare = rect.width() - sum(i.sizeHint().width() for i in items) - self.SPACING * (len(items) - 1)
            left = rect.x()
            for n, item in enumerate(items):
                width = item.sizeHint().width() + spare // len(items) + (spare % len(items) if n == 0 else 0)
                if move:
                    item.setGeometry(QRect(left, top, max(width, 0), height))
                left += width + self.SPACING
            top += height + self.SPACING
        return top - rect.y() - self.SPACING if rows[0] else 0


class RunsBrowser(QWidget):
    """Lists runs newest first. Tick runs to overlay them on the plots; select one for the Generate and
    Attention tabs. Rename, delete, open, resume and fine-tune act on the selected run.

    Two views of the same runs: the list (two lines a run, for a narrow sidebar) and the table (a row a run, its
    settings and results in columns, to sort, filter and compare). Both tick and select the same runs; the table
    also selects two at once, to compare their configs."""

    selection_changed = Signal(object)  # Path | None
    compare_changed = Signal(list)  # [Path]: the ticked runs
    resume_requested = Signal(object)  # Path
    fine_tune_requested = Signal(object)  # Path
    distill_requested = Signal(object)  # Path: the teacher of a new, smaller run
    run_removed = Signal(object)  # Path: deleted, or renamed away from
    table_mode_changed = Signal(bool)  # the table wants more width than the list: the window may give it

    def __init__(self, runs_dir: Path, parent: QWidget | None = None, settings: QSettings | None = None):
        super().__init__(parent)
        self.setObjectName("runsBrowser")  # its buttons' padding is narrower (style.py): two fit a narrow sidebar
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings  # None: choices last as long as the browser
        self.active_run: Path | None = None
        self.active_status = ""
        self.training = False
        self._infos: dict[Path, RunInfo] = {}
        self._run_table = RunTable(self.runs_dir)
        self._syncing = False  # set while the browser itself moves a view's selection
        self.diff_dialog: ConfigDiffDialog | None = None

        title = QLabel("Runs")
        title.setObjectName("runTitle")
        self.list_button = QToolButton(text="List", checkable=True, checked=True, autoRaise=True)
        self.list_button.setToolTip("Two lines a run: fits a narrow sidebar.")
        self.table_button = QToolButton(text="Table", checkable=True, autoRaise=True)
        self.table_button.setToolTip("A row a run, its settings and results in columns: sort, filter, compare.")
        self._view_buttons = QButtonGroup(self)  # exclusive: one view at a time
        self._view_buttons.addButton(self.list_button)
        self._view_buttons.addButton(self.table_button)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setItemDelegate(RunDelegate(self.tree))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.setToolTip("Tick runs to compare them on the plots; select one to use it in the other tabs.")
        self.table = RunsTable()
        self.table.set_shown_columns(self._setting(COLUMNS_SETTING, self.table.shown_columns()))
        self.stack = QStackedWidget()
        self.stack.addWidget(self.tree)
        self.stack.addWidget(self.table)
        self.table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # see set_table_mode

        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue a stopped, failed or interrupted run from its last checkpoint.")
        self.fine_tune_button = QPushButton("Fine-tune…")
        self.fine_tune_button.setToolTip("Train this run's model further on new text, as a new run.")
        self.distill_button = QPushButton("Distil from run…")
        self.distill_button.setToolTip("Train a smaller model that learns from this run's predictions as well as "
                                       "from its text, as a new run.")
        self.rename_button = QPushButton("Rename…")
        self.rename_button.setToolTip("Give the run folder a new name.")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("danger")
        self.delete_button.setToolTip("Delete the run folder and its checkpoints (asks first).")
        self.open_button = QPushButton("Folder")
        self.open_button.setToolTip("Show the run folder (config, metrics, checkpoints) in your file manager.")
        self.empty_hint = QLabel("No runs yet. Pick a corpus and a preset, then press Start.")
        self.empty_hint.setObjectName("hint")
        self.empty_hint.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row(title, 1, self.list_button, self.table_button))
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.empty_hint)
        for group in ((self.resume_button, self.fine_tune_button, self.distill_button),  # training on; the folder
                      (self.rename_button, self.delete_button, self.open_button)):
            actions = ButtonRows()
            for button in group:
                actions.addWidget(button)
            layout.addLayout(actions)

        self.tree.itemSelectionChanged.connect(self._on_selection_changed)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.customContextMenuRequested.connect(self._show_menu)
        self.resume_button.clicked.connect(lambda: self._emit_for_selected(self.resume_requested))
        self.fine_tune_button.clicked.connect(lambda: self._emit_for_selected(self.fine_tune_requested))
        self.distill_button.clicked.connect(lambda: self._emit_for_selected(self.distill_requested))
        self.rename_button.clicked.connect(self.rename_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.open_button.clicked.connect(self.open_selected)
        self.table_button.toggled.connect(self.set_table_mode)
        self.table.model.tick_changed.connect(self.set_checked)
        self.table.view.selectionModel().selectionChanged.connect(self._on_table_selection_changed)
        self.table.view.selectionModel().currentChanged.connect(self._on_table_selection_changed)
        self.table.view.customContextMenuRequested.connect(self._show_table_menu)
        self.table.compare_requested.connect(self.compare_selected)
        self.table.columns_changed.connect(lambda keys: self._save_setting(COLUMNS_SETTING, keys))

        # New and removed run folders show up by themselves; a short delay coalesces bursts of changes.
        self._watcher = QFileSystemWatcher([str(self.runs_dir)], self)
        self._refresh_soon = QTimer(self, singleShot=True, interval=200)
        self._refresh_soon.timeout.connect(self.refresh)
        self._watcher.directoryChanged.connect(self._refresh_soon.start)
        self.refresh()
        self.set_table_mode(self._setting(VIEW_SETTING, "list") == "table")

    # ---- reading the runs folder -----------------------------------------------------------------
    def refresh(self) -> None:
        selected, ticked = self.selected_run(), set(self.checked_runs())
        self.tree.blockSignals(True)
        self.tree.clear()
        self._infos = {info.path: info for info in list_runs(self.runs_dir)}
        for info in self._infos.values():
            item = QTreeWidgetItem([info.name])
            item.setData(0, PATH_ROLE, str(info.path))
            item.setData(0, DETAILS_ROLE, self.details(info))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(0, Qt.CheckState.Checked if info.path in ticked else Qt.CheckState.Unchecked)
            item.setIcon(0, status_icon(self.display_status(info)))
            item.setToolTip(0, f"{info.path}\n{self.details(info)} · step {info.step:,}\n"
                            "Tick to compare on the plots.")
            self.tree.addTopLevelItem(item)
            if info.path == selected:
                item.setSelected(True)
        self.tree.blockSignals(False)
        self.empty_hint.setVisible(not self._infos)
        if self.is_table_mode():
            self._update_table()
        self._update_buttons()
        if self.selected_run() != selected:
            self.selection_changed.emit(self.selected_run())
        if set(self.checked_runs()) != ticked:
            self.compare_changed.emit(self.checked_runs())

    def details(self, info: RunInfo) -> str:
        """'finished · Transformer · 804 k · val 1.883': status, model kind, parameters, best validation loss."""
        parts = [self.display_status(info), FAMILY_NAMES.get(info.family, info.family)]
        if info.parameters:
            parts.append(format_count(info.parameters))
        if info.best_val_loss is not None:
            parts.append(f"val {info.best_val_loss:.3f}")
        return " · ".join(parts)

    def display_status(self, info: RunInfo) -> str:
        """The run training in this window shows its live state; any other, what lmcore says of it (a run whose
        process died unannounced is 'interrupted', one training in a process of its own 'running')."""
        if info.path == self.active_run and self.active_status:
            return self.active_status
        return info.status

    def _update_table(self) -> None:
        model = self.table.model
        model.statuses = {self.active_run: self.active_status} if self.active_run and self.active_status else {}
        model.set_ticked(set(self.checked_runs()))
        with self._sync():  # the table keeps its selection through a refresh; the list's is put back already
            self.table.set_rows(self._run_table.rows())

    def set_active_run(self, run_dir: Path | None, status: str = "") -> None:
        """The run training in this window (None when idle), and its live status."""
        self.active_run, self.active_status = (Path(run_dir) if run_dir else None), status
        self.training = run_dir is not None and status in ("preparing", "running", "paused")
        self.refresh()

    # ---- list or table ---------------------------------------------------------------------------
    def is_table_mode(self) -> bool:
        return self.stack.currentWidget() is self.table

    def set_table_mode(self, table: bool) -> None:
        for button, checked in ((self.table_button, table), (self.list_button, not table)):
            button.blockSignals(True)  # the buttons follow the mode here; only a click on them sets it
            button.setChecked(checked)
            button.blockSignals(False)
        if table == self.is_table_mode():
            return
        self.stack.setCurrentWidget(self.table if table else self.tree)
        for page in (self.tree, self.table):  # a stack is as wide as its widest page, unless the hidden one yields
            policy = QSizePolicy.Policy.Preferred if page is self.stack.currentWidget() else QSizePolicy.Policy.Ignored
            page.setSizePolicy(policy, policy)
        if table:
            self._update_table()
            run = self.selected_run()
            with self._sync():
                self.table.select_runs([run] if run else [])
        self._update_buttons()
        self._save_setting(VIEW_SETTING, "table" if table else "list")
        self.table_mode_changed.emit(table)

    def _setting(self, key: str, default):
        raw = self.settings.value(key, "") if self.settings is not None else ""
        try:
            return json.loads(raw) if isinstance(raw, str) and raw else default
        except ValueError:  # written by hand, or by another version
            return default

    def _save_setting(self, key: str, value) -> None:
        if self.settings is not None:
            self.settings.setValue(key, json.dumps(value))

    @contextlib.contextmanager
    def _sync(self):
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    # ---- selection and ticks ---------------------------------------------------------------------
    def selected_run(self) -> Path | None:
        """The run the other tabs show: the list's selection, which follows the table's focused row."""
        items = self.tree.selectedItems()
        return Path(items[0].data(0, PATH_ROLE)) if items else None

    def selected_runs(self) -> list[Path]:
        """Every selected run: the table selects several, the list one."""
        if self.is_table_mode():
            return self.table.selected_runs()
        run = self.selected_run()
        return [run] if run else []

    def select_run(self, run_dir: Path) -> None:
        for item in self._items():
            item.setSelected(Path(item.data(0, PATH_ROLE)) == Path(run_dir))

    def checked_runs(self) -> list[Path]:
        return [Path(item.data(0, PATH_ROLE)) for item in self._items() if item.checkState(0) == Qt.CheckState.Checked]

    def set_checked(self, run_dir: Path, checked: bool) -> None:
        for item in self._items():
            if Path(item.data(0, PATH_ROLE)) == Path(run_dir):
                item.setCheckState(0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def _items(self) -> list[QTreeWidgetItem]:
        return [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]

    def _on_selection_changed(self) -> None:
        run = self.selected_run()
        if self.is_table_mode() and self.table.current_run() != run:
            with self._sync():
                self.table.select_runs([run] if run else [])
        self._update_buttons()
        self.selection_changed.emit(run)

    def _on_table_selection_changed(self, *_) -> None:
        """The list follows the table's focused row, quietly, and the tabs follow it when it moves."""
        if self._syncing:
            return
        run = self.table.current_run()
        if run != self.selected_run():
            self.tree.blockSignals(True)
            for item in self._items():
                item.setSelected(Path(item.data(0, PATH_ROLE)) == run)
            self.tree.blockSignals(False)
            self.selection_changed.emit(run)
        self._update_buttons()

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.table.model.set_ticked(set(self.checked_runs()))
            self.compare_changed.emit(self.checked_runs())

    def _update_buttons(self) -> None:
        run = self.selected_run()
        several = len(self.selected_runs()) > 1  # which one would Rename or Resume mean?
        info = self._infos.get(run) if run and not several else None
        status = self.display_status(info) if info else ""
        idle_other = info is not None and run != self.active_run
        self.resume_button.setEnabled(idle_other and not self.training and status in RESUMABLE)
        self.fine_tune_button.setEnabled(idle_other and not self.training and status in FINE_TUNABLE)
        self.distill_button.setEnabled(self.fine_tune_button.isEnabled())  # a teacher is any run one could tune
        self.rename_button.setEnabled(idle_other)
        self.delete_button.setEnabled(idle_other)
        self.open_button.setEnabled(info is not None)

    # ---- actions ---------------------------------------------------------------------------------
    def _emit_for_selected(self, signal) -> None:
        run = self.selected_run()
        if run is not None:
            signal.emit(run)

    def rename_selected(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        name, ok = QInputDialog.getText(self, "Rename run", "New name for the run folder:", text=run.name)
        if not ok or name.strip() == run.name:
            return
        try:
            renamed = rename_run(run, name)
        except (LMCoreError, OSError) as exc:
            QMessageBox.warning(self, "Cannot rename", str(exc))
            return
        ticked = run in self.checked_runs()
        self.run_removed.emit(run)
        self.refresh()
        self.select_run(renamed)
        if ticked:
            self.set_checked(renamed, True)

    def delete_selected(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        answer = QMessageBox.question(
            self, "Delete run", f"Delete the run “{run.name}” with its checkpoints and metrics?\n\n"
            "This cannot be undone.", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            delete_run(run)
        except (LMCoreError, OSError) as exc:
            QMessageBox.warning(self, "Cannot delete", str(exc))
            return
        self.run_removed.emit(run)
        self.refresh()

    def open_selected(self) -> None:
        run = self.selected_run()
        if run is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(run)))

    def export_selected(self) -> None:
        """The selected run's model to Hugging Face, ONNX or safetensors (ExportDialog)."""
        run = self.selected_run()
        if run is not None:
            ExportDialog(run, self).open()

    def compare_selected(self) -> None:
        """With two runs selected in the table, show the settings in which they differ."""
        rows = self.table.compared_rows()
        if rows is None:
            return
        if self.diff_dialog is not None:  # one comparison at a time: the new pair replaces the last
            self.diff_dialog.close()
            self.diff_dialog.deleteLater()
        self.diff_dialog = ConfigDiffDialog(rows, self)
        self.diff_dialog.show()

    def _actions_menu(self) -> QMenu:
        menu = QMenu(self)
        for button in (self.resume_button, self.fine_tune_button, self.distill_button, None, self.rename_button, self.delete_button,
                       None, self.open_button):
            if button is None:
                menu.addSeparator()
            else:
                menu.addAction(button.text(), button.click).setEnabled(button.isEnabled())
        menu.addAction("Export…", self.export_selected).setEnabled(self.open_button.isEnabled())
        return menu

    def _show_menu(self, position) -> None:
        if self.tree.itemAt(position) is not None:
            self._actions_menu().exec(self.tree.viewport().mapToGlobal(position))

    def _show_table_menu(self, position) -> None:
        if not self.table.view.indexAt(position).isValid():
            return
        menu = self._actions_menu()
        menu.addSeparator()
        menu.addAction("Compare configs…", self.compare_selected).setEnabled(
            self.table.compare_button.isEnabled())
        menu.exec(self.table.view.viewport().mapToGlobal(position))

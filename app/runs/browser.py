"""The runs browser: every run in the runs folder, with what it is and how it went, and what can be done to it."""
from __future__ import annotations

import traceback
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QRect, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFont, QFontMetrics
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QInputDialog, QLabel, QMenu, QMessageBox,
                               QPushButton, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from lmcore.errors import LMCoreError
from lmcore.runs import RunInfo, delete_run, list_runs, rename_run

from ..common.style import MUTED, status_icon
from ..common.text import FAMILY_NAMES, format_count, label_parts

RESUMABLE = ("stopped", "failed", "interrupted")
FINE_TUNABLE = ("finished", "stopped")
PATH_ROLE = Qt.UserRole
DETAILS_ROLE = Qt.UserRole + 1  # the second line: status, model, size, best validation loss


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
        style.drawControl(QStyle.CE_ItemViewItem, option, painter, widget)  # background, tick box, status dot
        text_rect = style.subElementRect(QStyle.SE_ItemViewItemText, option, widget)
        line = option.fontMetrics.lineSpacing()
        top = text_rect.top() + (text_rect.height() - 2 * line) // 2
        bold = QFont(option.font)
        bold.setWeight(QFont.DemiBold)
        base, when = label_parts(name)
        when_width = option.fontMetrics.horizontalAdvance(when) + 6 if when else 0
        first_line = QRect(text_rect.left(), top, text_rect.width(), line)
        painter.save()
        try:
            painter.setFont(bold)
            painter.drawText(first_line.adjusted(0, 0, -when_width, 0), Qt.AlignLeft | Qt.AlignVCenter,
                             QFontMetrics(bold).elidedText(base, Qt.ElideMiddle, text_rect.width() - when_width))
            painter.setFont(option.font)
            painter.setPen(QColor(MUTED))
            painter.drawText(first_line, Qt.AlignRight | Qt.AlignVCenter, when)
            details = index.data(DETAILS_ROLE) or ""
            painter.drawText(QRect(text_rect.left(), top + line, text_rect.width(), line),
                             Qt.AlignLeft | Qt.AlignVCenter,
                             option.fontMetrics.elidedText(details, Qt.ElideRight, text_rect.width()))
        finally:  # the fallback paints with the painter as it was
            painter.restore()

    def sizeHint(self, option, index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width(), 2 * option.fontMetrics.lineSpacing() + 10)


class RunsBrowser(QWidget):
    """Lists runs newest first. Tick runs to overlay them on the plots; select one for the Generate and
    Attention tabs. Rename, delete, open, resume and fine-tune act on the selected run."""

    selection_changed = Signal(object)  # Path | None
    compare_changed = Signal(list)  # [Path]: the ticked runs
    resume_requested = Signal(object)  # Path
    fine_tune_requested = Signal(object)  # Path
    run_removed = Signal(object)  # Path: deleted, or renamed away from

    def __init__(self, runs_dir: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.active_run: Path | None = None
        self.active_status = ""
        self.training = False
        self._infos: dict[Path, RunInfo] = {}

        title = QLabel("Runs")
        title.setObjectName("runTitle")
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setItemDelegate(RunDelegate(self.tree))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.setContextMenuPolicy(Qt.CustomContextMenu)
        self.tree.setToolTip("Tick runs to compare them on the plots; select one to use it in the other tabs.")

        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue a stopped, failed or interrupted run from its last checkpoint.")
        self.fine_tune_button = QPushButton("Fine-tune…")
        self.fine_tune_button.setToolTip("Train this run's model further on new text, as a new run.")
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

        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for button in (self.resume_button, self.fine_tune_button):
            row1.addWidget(button)
        for button in (self.rename_button, self.delete_button, self.open_button):
            row2.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.empty_hint)
        layout.addLayout(row1)
        layout.addLayout(row2)

        self.tree.itemSelectionChanged.connect(self._on_selection_changed)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.customContextMenuRequested.connect(self._show_menu)
        self.resume_button.clicked.connect(lambda: self._emit_for_selected(self.resume_requested))
        self.fine_tune_button.clicked.connect(lambda: self._emit_for_selected(self.fine_tune_requested))
        self.rename_button.clicked.connect(self.rename_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.open_button.clicked.connect(self.open_selected)

        # New and removed run folders show up by themselves; a short delay coalesces bursts of changes.
        self._watcher = QFileSystemWatcher([str(self.runs_dir)], self)
        self._refresh_soon = QTimer(self, singleShot=True, interval=200)
        self._refresh_soon.timeout.connect(self.refresh)
        self._watcher.directoryChanged.connect(self._refresh_soon.start)
        self.refresh()

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
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(0, Qt.Checked if info.path in ticked else Qt.Unchecked)
            item.setIcon(0, status_icon(self.display_status(info)))
            item.setToolTip(0, f"{info.path}\n{self.details(info)} · step {info.step:,}\n"
                            "Tick to compare on the plots.")
            self.tree.addTopLevelItem(item)
            if info.path == selected:
                item.setSelected(True)
        self.tree.blockSignals(False)
        self.empty_hint.setVisible(not self._infos)
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

    def set_active_run(self, run_dir: Path | None, status: str = "") -> None:
        """The run training in this window (None when idle), and its live status."""
        self.active_run, self.active_status = (Path(run_dir) if run_dir else None), status
        self.training = run_dir is not None and status in ("preparing", "running", "paused")
        self.refresh()

    # ---- selection and ticks ---------------------------------------------------------------------
    def selected_run(self) -> Path | None:
        items = self.tree.selectedItems()
        return Path(items[0].data(0, PATH_ROLE)) if items else None

    def select_run(self, run_dir: Path) -> None:
        for item in self._items():
            item.setSelected(Path(item.data(0, PATH_ROLE)) == Path(run_dir))

    def checked_runs(self) -> list[Path]:
        return [Path(item.data(0, PATH_ROLE)) for item in self._items() if item.checkState(0) == Qt.Checked]

    def set_checked(self, run_dir: Path, checked: bool) -> None:
        for item in self._items():
            if Path(item.data(0, PATH_ROLE)) == Path(run_dir):
                item.setCheckState(0, Qt.Checked if checked else Qt.Unchecked)

    def _items(self) -> list[QTreeWidgetItem]:
        return [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]

    def _on_selection_changed(self) -> None:
        self._update_buttons()
        self.selection_changed.emit(self.selected_run())

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.compare_changed.emit(self.checked_runs())

    def _update_buttons(self) -> None:
        run = self.selected_run()
        info = self._infos.get(run) if run else None
        status = self.display_status(info) if info else ""
        idle_other = info is not None and run != self.active_run
        self.resume_button.setEnabled(idle_other and not self.training and status in RESUMABLE)
        self.fine_tune_button.setEnabled(idle_other and not self.training and status in FINE_TUNABLE)
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
            "This cannot be undone.", QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
        if answer != QMessageBox.Yes:
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

    def _show_menu(self, position) -> None:
        if self.tree.itemAt(position) is None:
            return
        menu = QMenu(self)
        for button in (self.resume_button, self.fine_tune_button, None, self.rename_button, self.delete_button,
                       None, self.open_button):
            if button is None:
                menu.addSeparator()
            else:
                menu.addAction(button.text(), button.click).setEnabled(button.isEnabled())
        menu.exec(self.tree.viewport().mapToGlobal(position))

"""Tabular benchmarks: a finite space trained exhaustively, kept as data, replayed by searches."""

from nas.tabular.table import Entry, Table, TableError, Training, export_table, read, write

__all__ = ["Entry", "Table", "TableError", "Training", "export_table", "read", "write"]

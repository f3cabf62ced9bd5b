"""Where preferences live: QSettings in INI format, relocatable for tests.

``MASKWORK_CONFIG_DIR`` moves settings and the recovery file elsewhere, which the tests use
so that they never read or overwrite a person's own settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

ORGANIZATION = "maskwork"
APPLICATION = "maskwork"
MAX_RECENT = 10


def config_dir() -> Path:
    """Folder of the settings file and the recovery file."""
    override = os.environ.get("MASKWORK_CONFIG_DIR")
    if override:
        return Path(override)
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation)
    return Path(location or Path.home() / ".config" / APPLICATION)


def settings() -> QSettings:
    """The application's settings store."""
    path = config_dir() / "maskwork.ini"
    return QSettings(str(path), QSettings.Format.IniFormat)


def recent_files() -> list[str]:
    """Recently opened files, newest first, only those that still exist."""
    value = settings().value("recent_files", [])
    if isinstance(value, str):
        value = [value]
    return [path for path in (value or []) if Path(path).exists()]


def add_recent_file(path: str | Path) -> list[str]:
    """Put ``path`` first in the recent files and return the new list."""
    path = str(Path(path).resolve())
    files = [path] + [item for item in recent_files() if item != path]
    store = settings()
    store.setValue("recent_files", files[:MAX_RECENT])
    store.sync()
    return files[:MAX_RECENT]

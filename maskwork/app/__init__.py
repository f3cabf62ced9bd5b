"""The Qt application: main window, workers, preview controller, settings, autosave."""

"""Training, evaluation and reports: cross-validation, calibration, thresholds and metrics."""

"""The training worker: retrain on request, gate on a shared holdout, publish what happened."""

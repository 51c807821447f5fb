"""`corral worker`: runs a user's Python function for the events of a trigger."""

from corral.worker.runtime import Context, TriggerWorker, load_function

__all__ = ["Context", "TriggerWorker", "load_function"]

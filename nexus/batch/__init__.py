"""Batch inference with Spark into Delta Lake tables (``nexus batch predict``)."""

from nexus.batch.predict import BatchPredictConfig, BatchPredictResult, run_batch_predict

__all__ = ["BatchPredictConfig", "BatchPredictResult", "run_batch_predict"]

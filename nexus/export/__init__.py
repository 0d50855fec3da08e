"""Export trained weights: ONNX (FP32/FP16), INT8 ONNX, TensorRT engines."""

from nexus.export.exporter import ExportConfig, ExportResult, export_model

__all__ = ["ExportConfig", "ExportResult", "export_model"]

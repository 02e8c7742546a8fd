"""Predefined auto-annotation functions. Each module exposes ``create(**params)``.

Heavy libraries (torch, onnxruntime, OpenCV, segment_anything) are imported inside ``create``,
never when this package or a module of it is imported.
"""

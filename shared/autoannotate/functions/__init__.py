"""Predefined auto-annotation functions. Each module exposes ``create(**params)`` and declares its
registry record, ``FUNCTION = FunctionRecord(...)`` (:mod:`autoannotate.registry`); modules whose
name starts with ``_`` and modules without a record (shared helpers) are not functions.

Heavy libraries (torch, onnxruntime, OpenCV, segment_anything) are imported inside ``create``,
never when this package or a module of it is imported.
"""

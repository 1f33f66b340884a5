"""Example photos that ship with our dependencies (no binary blobs in this repo).

- grace_hopper.jpg: matplotlib sample data (US Navy photo, public domain).
- china.jpg, flower.jpg: scikit-learn sample images (CC BY 2.0, credited in their README).
"""
from __future__ import annotations

from pathlib import Path


def example_images() -> list[str]:
    paths = []
    try:
        import matplotlib
        paths.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    except ImportError:
        pass
    try:
        import sklearn.datasets
        d = Path(sklearn.datasets.__file__).parent / "images"
        paths += [d / "flower.jpg", d / "china.jpg"]
    except ImportError:
        pass
    return [str(p) for p in paths if p.is_file()]

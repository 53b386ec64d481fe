"""What a variant is, for cache keys and the manifest: its source, loading settings, device; and package versions."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from layerdrift.workbench.config import ExperimentConfig, VariantSpec
from layerdrift.workbench.models.embedded import EMBEDDED
from layerdrift.workbench.models.loading import pick_device

PACKAGES = (
    "layerdrift",
    "torch",
    "transformers",
    "transformer-lens",
    "bitsandbytes",
    "gguf",
    "zarr",
    "numpy",
    "scipy",
    "scikit-learn",
    "umap-learn",
    "giotto-ph",
    "ripser",
    "panel",
    "plotly",
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def source_identity(spec: VariantSpec) -> dict[str, Any]:
    """Cheap identity of a variant's weights (no hashing of big files) for cache fingerprints."""
    if spec.source in EMBEDDED:
        pkg = EMBEDDED[spec.source].package
        try:
            version = metadata.version(pkg.replace("_", "-"))
        except metadata.PackageNotFoundError:
            version = "missing"
        return {"embedded": spec.source, "package_version": version}
    path = Path(spec.source).expanduser()
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
        return {"files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
    return {"hub": spec.source, "revision": spec.revision}


def variant_identity(config: ExperimentConfig, spec: VariantSpec) -> dict[str, Any]:
    """Everything about a variant that changes its activations (weights, loading, device, dtype)."""
    return {
        "variant": spec.model_dump(mode="json", exclude={"name", "reference", "noise_floor"}),
        "source": source_identity(spec),
        "device": pick_device(spec.device or config.device),
        "dtype": config.dtype,
    }

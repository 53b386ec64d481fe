"""layerdrift: see where, inside a language model, post-training and quantization move concept representations."""

from layerdrift.errors import LayerdriftError
from layerdrift.workbench.store.runstore import RunStore


def open_run(path):
    """Open a finished run: ``.tables`` (DataFrames), ``.figures`` (Plotly), ``.store``, ``.meta``."""
    from layerdrift.workbench.api import open_run as _open_run

    return _open_run(path)


def run(config, out=None, quiet=False):
    """Run extraction + analyses + report for an ExperimentConfig (see ``layerdrift.workbench.config``)."""
    from layerdrift.workbench.api import run as _run

    return _run(config, out=out, quiet=quiet)


def compare_runs(runs, names=None):
    """Several finished runs side by side (``layerdrift.workbench.compare``): ``.tables``, ``.figures``, ``.notes``."""
    from layerdrift.workbench.compare import compare_runs as _compare_runs

    return _compare_runs(runs, names)


__version__ = "0.1.0"
__all__ = ["LayerdriftError", "RunStore", "__version__", "compare_runs", "open_run", "run"]

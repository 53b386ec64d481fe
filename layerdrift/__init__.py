"""layerdrift: see where, inside a language model, post-training and quantization move concept representations."""

from layerdrift.errors import LayerdriftError
from layerdrift.workbench.store import RunStore

__version__ = "0.1.0"
__all__ = ["LayerdriftError", "RunStore", "__version__"]

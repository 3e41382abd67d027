"""prompt-recovery: recover the instruction an LLM was given from (original, rewritten) text.

    from prompt_recovery import Recoverer
    r = Recoverer.load()                      # default model (SmolLM2-135M-Instruct + shipped adapter)
    r.recover("original text", "rewritten text")

Heavy libraries (torch, transformers) are imported only when a model is loaded.
"""

__version__ = "0.1.0"
__all__ = ["Recoverer", "UserError", "__version__"]

from prompt_recovery.errors import UserError


def __getattr__(name):
    if name == "Recoverer":
        from prompt_recovery.inference.recover import Recoverer

        return Recoverer
    raise AttributeError(name)

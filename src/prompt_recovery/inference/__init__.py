"""The inference stage: load a recovery model on an engine and recover instructions for pairs.

    prompt-recovery recover --examples
    prompt-recovery predict test.csv -o submission.csv

Modules: `recover` (the `Recoverer` API and the `recover` command), `predict` (batch prediction,
resumable), and the generation engines behind `Recoverer`.
"""

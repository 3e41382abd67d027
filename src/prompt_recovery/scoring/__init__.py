"""The scoring stage: metrics of recovered instructions against true ones, and the reports.

    prompt-recovery evaluate runs/pred/dev.csv --truth runs/data/dev.clean.jsonl -d runs/eval/dev
    prompt-recovery baseline runs/data/dev.clean.jsonl

Modules: `metrics` (SCS, BLEU, ROUGE-L, token F1, exact match, category accuracy, bootstrap CIs),
`embedders` (sentence embedders), `categories` (the instruction classifier), `suite` (the
instruction-family suite and bundled examples), `evaluate` and `baselines` (the commands).
"""

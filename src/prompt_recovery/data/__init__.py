"""The training-data stage: import, clean, split, generate and augment (prompt, original, rewrite) triples.

    prompt-recovery data clean --input ../shared/data/public_triples/train.csv --output runs/data/train.clean.jsonl
    prompt-recovery generate --originals ../shared/data/originals/dlerhetal_testBlend_3000.csv --n 100 --output runs/data/gen.jsonl

Modules: `importing` (read files into the canonical schema), `clean` (filters + report),
`split` (splits by original text + dataset card), `prompts` (prompt bank + compositional
templates), `rewriters` (local transformers / OpenAI-compatible HTTP backends), `generate`
(resumable generation), `noise` (typo noise, BPE dropout), `command` (the `data` command).
"""

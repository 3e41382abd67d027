"""The search stage: more than one candidate instruction per pair, one chosen by consensus or replay,
and a constant "mean prompt" optimised for SCS.

    prompt-recovery predict dev.jsonl -o pred.csv --candidates 4 --select replay
    prompt-recovery mean-prompt runs/data/train.clean.jsonl -o runs/search/mean_prompt.txt

Modules: `search` (the options and `SearchRecoverer`), `candidates` (beam/sampled candidates and the
prompt bank), `replay` (replay verification), `mean_prompt` (the `mean-prompt` command).
"""

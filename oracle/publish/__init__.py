"""Stage 5 of the pipeline: sign agreed retargets and land them on the DifficultyOracle contract."""

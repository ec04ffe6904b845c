"""What keeps a run whole: checkpoints, the run-folder lock, signals, seeding, distributed
processes, precision, the training step, metrics files and parallel jobs."""

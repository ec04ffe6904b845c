"""The application layer: data sets, the training recipe and loop, checkpoints, the
solver ablation and the ``odenets`` command line. Imports everything below it; nothing
below imports it."""

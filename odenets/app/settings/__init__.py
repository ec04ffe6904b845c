"""A run's settings: :class:`Config` (every option checked in one place), TOML settings
files and the training recipe."""

"""The zoo: settings, YAML loading, run folders, factories, the run loop, debug mode, reports,
tuning and the console command (``sb3-selfplay ...``)."""

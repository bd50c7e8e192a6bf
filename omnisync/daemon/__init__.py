"""The daemon: schedules exports, reconciles on every tick, hot-reloads the config."""

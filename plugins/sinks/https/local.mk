# Build rules for plugins/sinks/https (none yet).

# Build rules for plugins/handlers/marketplace (none yet).

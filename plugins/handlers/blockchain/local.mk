# Build rules for plugins/handlers/blockchain (none yet).

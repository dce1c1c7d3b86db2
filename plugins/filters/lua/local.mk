# Build rules for plugins/filters/lua (none yet).

pkgplugin_LTLIBRARIES += plugins/sinks/file/file.la
plugins_sinks_file_file_la_SOURCES = plugins/sinks/file/file.c
plugins_sinks_file_file_la_LIBADD = $(CJSON_LIBS)
plugins_sinks_file_file_la_LDFLAGS = $(PLUGIN_LDFLAGS)

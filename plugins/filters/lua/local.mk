# Lua filter plugin (plugins/filters/lua): one Lua 5.4 state per script.
pkgplugin_LTLIBRARIES += plugins/filters/lua/lua.la
plugins_filters_lua_lua_la_SOURCES = plugins/filters/lua/lua_filter.c \
	plugins/filters/lua/lua_json.c plugins/filters/lua/lua_api.c \
	plugins/filters/lua/lua_lazy.c \
	plugins/filters/lua/lua_filter.h
plugins_filters_lua_lua_la_CFLAGS = $(AM_CFLAGS) $(LUA_CFLAGS)
plugins_filters_lua_lua_la_LIBADD = $(LUA_LIBS) $(CJSON_LIBS)
plugins_filters_lua_lua_la_LDFLAGS = $(PLUGIN_LDFLAGS)

if HAVE_CHECK
check_PROGRAMS += tests/unit/test_lua
# The host's decoder (host/src/decode.c) builds the index of members the
# daemon offers the plugin; the fake host uses the same one.
tests_unit_test_lua_SOURCES = tests/unit/test_lua.c tests/unit/test_lua_host.c \
	tests/unit/test_lua_host.h host/src/decode.c
tests_unit_test_lua_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	-DLUA_EXAMPLES_DIR='"$(abs_top_srcdir)/plugins/filters/lua/examples"'
tests_unit_test_lua_LDADD = $(CHECK_LIBS) $(CJSON_LIBS) $(OPENSSL_LIBS) -ldl \
	-lpthread
TESTS += tests/unit/test_lua
endif

# Benchmark of the plugin alone (scripts/bench-lua builds and runs it).
check_PROGRAMS += plugins/filters/lua/lua-bench
plugins_filters_lua_lua_bench_SOURCES = plugins/filters/lua/lua_bench.c \
	tests/unit/test_lua_host.c tests/unit/test_lua_host.h host/src/decode.c
plugins_filters_lua_lua_bench_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/tests/unit
plugins_filters_lua_lua_bench_LDADD = $(CJSON_LIBS) $(OPENSSL_LIBS) -ldl -lpthread

EXTRA_DIST += docs/lua-filters.md tests/e2e/lua.sh scripts/bench-lua \
	plugins/filters/lua/examples

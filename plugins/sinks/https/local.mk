# HTTPS sink: plugins/sinks/https (libcurl multi, OpenSSL HMAC, zlib gzip).
HTTPS_SINK_SOURCES = plugins/sinks/https/https.c \
	plugins/sinks/https/https_conf.c plugins/sinks/https/https_body.c \
	plugins/sinks/https/https.h host/src/json_edit.c
pkgplugin_LTLIBRARIES += plugins/sinks/https/https.la
plugins_sinks_https_https_la_SOURCES = $(HTTPS_SINK_SOURCES)
plugins_sinks_https_https_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) \
	$(OPENSSL_CFLAGS) $(ZLIB_CFLAGS)
plugins_sinks_https_https_la_LIBADD = $(CURL_LIBS) $(CJSON_LIBS) \
	$(OPENSSL_LIBS) $(ZLIB_LIBS) -lpthread
plugins_sinks_https_https_la_LDFLAGS = $(PLUGIN_LDFLAGS)

# Unit/integration tests: the plugin compiled in, a fake host, and a real
# TLS receiver (tests/peers/https/server.py) with a throwaway CA.
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_https
TESTS += tests/unit/test_https
endif
tests_unit_test_https_SOURCES = tests/unit/test_https.c $(HTTPS_SINK_SOURCES)
tests_unit_test_https_CPPFLAGS = $(AM_CPPFLAGS) \
	-DHTTPS_PEER_DIR='"$(abs_top_srcdir)/tests/peers/https"'
tests_unit_test_https_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(CURL_CFLAGS) \
	$(OPENSSL_CFLAGS) $(ZLIB_CFLAGS)
tests_unit_test_https_LDADD = $(CHECK_LIBS) $(CURL_LIBS) $(CJSON_LIBS) \
	$(OPENSSL_LIBS) $(ZLIB_LIBS) -lpthread
EXTRA_DIST += tests/peers/https/server.py tests/peers/https/mkcerts.sh \
	docs/https-sink.md scripts/bench-https \
	plugins/sinks/https/bench/receiver.c plugins/sinks/https/bench/driver.c \
	tests/e2e/https.sh

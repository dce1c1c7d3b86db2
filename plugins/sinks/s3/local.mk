# S3 sink plugin: batches events into JSON-lines objects (optionally gzip),
# uploads them with SigV4 (libcurl) and multipart; credentials from the shared
# chain in host/aws. gzip is libdeflate (configure: libdeflate-dev).
pkgplugin_LTLIBRARIES += plugins/sinks/s3/s3.la
plugins_sinks_s3_s3_la_SOURCES = plugins/sinks/s3/s3.c plugins/sinks/s3/upload.c \
	plugins/sinks/s3/s3.h
plugins_sinks_s3_s3_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws
plugins_sinks_s3_s3_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(OPENSSL_CFLAGS)
plugins_sinks_s3_s3_la_LIBADD = host/aws/libesaws.la $(CURL_LIBS) \
	$(OPENSSL_LIBS) -ldeflate $(CJSON_LIBS)
plugins_sinks_s3_s3_la_LDFLAGS = $(PLUGIN_LDFLAGS)

if HAVE_CHECK
check_PROGRAMS += tests/unit/test_s3
tests_unit_test_s3_SOURCES = tests/unit/test_s3.c
tests_unit_test_s3_CPPFLAGS = $(AM_CPPFLAGS) \
	-DES_TEST_SRCDIR='"$(abs_top_srcdir)"' \
	-DES_TEST_BUILDDIR='"$(abs_top_builddir)"'
tests_unit_test_s3_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(ZLIB_CFLAGS)
tests_unit_test_s3_LDADD = $(CHECK_LIBS) $(CJSON_LIBS) $(ZLIB_LIBS)
TESTS += tests/unit/test_s3
endif

noinst_PROGRAMS += scripts/bench-s3-driver
scripts_bench_s3_driver_SOURCES = scripts/bench-s3-driver.c
scripts_bench_s3_driver_LDADD = $(CJSON_LIBS)

EXTRA_DIST += tests/e2e/s3_front.py tests/e2e/s3.sh docs/s3-sink.md \
	scripts/bench-s3 tests/peers/s3rver/package.json \
	tests/peers/s3rver/package-lock.json

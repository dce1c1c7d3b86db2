# Unit tests of the host's modules (Check), and the plugins the loader
# tests refuse or accept. End-to-end tests live in tests/e2e/ and are run by
# scripts/test after `make check`.
HOST_TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(RDKAFKA_CFLAGS)
HOST_TEST_LIBS = host/libeshost.la $(CHECK_LIBS)

if HAVE_CHECK
check_PROGRAMS += tests/unit/test_decode tests/unit/test_offsets \
	tests/unit/test_config tests/unit/test_loader
TESTS += tests/unit/test_decode tests/unit/test_offsets \
	tests/unit/test_config tests/unit/test_loader
endif
tests_unit_test_decode_SOURCES = tests/unit/test_decode.c
tests_unit_test_decode_CFLAGS = $(HOST_TEST_CFLAGS)
tests_unit_test_decode_LDADD = $(HOST_TEST_LIBS)

# Members removed from JSON text (host/src/json_edit.c, the PII strip).
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_json_edit
TESTS += tests/unit/test_json_edit
endif
tests_unit_test_json_edit_SOURCES = tests/unit/test_json_edit.c
tests_unit_test_json_edit_CFLAGS = $(HOST_TEST_CFLAGS)
tests_unit_test_json_edit_LDADD = $(HOST_TEST_LIBS)

# The base64 shared by the host and the bundled plugins (header only).
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_base64
TESTS += tests/unit/test_base64
endif
tests_unit_test_base64_SOURCES = tests/unit/test_base64.c
tests_unit_test_base64_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_base64_LDADD = $(CHECK_LIBS) $(OPENSSL_LIBS)

tests_unit_test_offsets_SOURCES = tests/unit/test_offsets.c
tests_unit_test_offsets_CFLAGS = $(HOST_TEST_CFLAGS)
tests_unit_test_offsets_LDADD = $(HOST_TEST_LIBS)
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(HOST_TEST_CFLAGS)
tests_unit_test_config_LDADD = $(HOST_TEST_LIBS)
tests_unit_test_loader_SOURCES = tests/unit/test_loader.c
tests_unit_test_loader_CFLAGS = $(HOST_TEST_CFLAGS)
tests_unit_test_loader_LDADD = $(HOST_TEST_LIBS)

# One source, five plugins: good, wrong ABI, small descriptor, missing
# callback, duplicate name.
check_LTLIBRARIES += tests/unit/plugins/tp_good.la \
	tests/unit/plugins/tp_wrongabi.la tests/unit/plugins/tp_small.la \
	tests/unit/plugins/tp_nodeliver.la tests/unit/plugins/tp_dup.la \
	tests/unit/plugins/tp_older.la
TP_SRC = tests/unit/plugins/test_plugins.c
tests_unit_plugins_tp_good_la_SOURCES = $(TP_SRC)
tests_unit_plugins_tp_good_la_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_VARIANT=1
tests_unit_plugins_tp_good_la_LDFLAGS = $(TEST_PLUGIN_LINK)
tests_unit_plugins_tp_wrongabi_la_SOURCES = $(TP_SRC)
tests_unit_plugins_tp_wrongabi_la_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_VARIANT=2
tests_unit_plugins_tp_wrongabi_la_LDFLAGS = $(TEST_PLUGIN_LINK)
tests_unit_plugins_tp_small_la_SOURCES = $(TP_SRC)
tests_unit_plugins_tp_small_la_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_VARIANT=3
tests_unit_plugins_tp_small_la_LDFLAGS = $(TEST_PLUGIN_LINK)
tests_unit_plugins_tp_nodeliver_la_SOURCES = $(TP_SRC)
tests_unit_plugins_tp_nodeliver_la_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_VARIANT=4
tests_unit_plugins_tp_nodeliver_la_LDFLAGS = $(TEST_PLUGIN_LINK)
tests_unit_plugins_tp_dup_la_SOURCES = $(TP_SRC)
tests_unit_plugins_tp_dup_la_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_VARIANT=5
tests_unit_plugins_tp_dup_la_LDFLAGS = $(TEST_PLUGIN_LINK)
tests_unit_plugins_tp_older_la_SOURCES = $(TP_SRC)
tests_unit_plugins_tp_older_la_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_VARIANT=6
tests_unit_plugins_tp_older_la_LDFLAGS = $(TEST_PLUGIN_LINK)

AM_TESTS_ENVIRONMENT = ES_TEST_PLUGIN_DIR=$(abs_top_builddir)/tests/unit/plugins/.libs; \
	export ES_TEST_PLUGIN_DIR; ES_BUILD_DIR=$(abs_top_builddir); export ES_BUILD_DIR; \
	ES_SRC_DIR=$(abs_top_srcdir); export ES_SRC_DIR;

EXTRA_DIST += tests/e2e/lib.sh tests/e2e/foundation.sh \
	tests/e2e/plugin_sdk.sh tests/e2e/gen_events.py docs/examples/counting_sink.c \
	tests/e2e/msk_iam.sh tests/e2e/msk_fake_broker.py scripts/demo.d/config.json \
	scripts/demo.d/events.py scripts/demo.d/produce.sh scripts/demo.d/show.sh \
	tests/e2e/docs.sh tests/e2e/doc_examples.py docs/examples/reading.avsc \
	tests/e2e/reload.sh tests/e2e/dry_run.sh

# A handler that emits a copy of each event: end-to-end tests of emit.
check_LTLIBRARIES += tests/plugins/echo.la
tests_plugins_echo_la_SOURCES = tests/plugins/echo_handler.c
tests_plugins_echo_la_LIBADD = $(CJSON_LIBS)
tests_plugins_echo_la_LDFLAGS = $(TEST_PLUGIN_LINK)
EXTRA_DIST += tests/e2e/emit.sh

# Regions and usage over time windows (issue 8).
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_region tests/unit/test_usage
TESTS += tests/unit/test_region tests/unit/test_usage
endif
tests_unit_test_region_SOURCES = tests/unit/test_region.c
tests_unit_test_region_CFLAGS = $(HOST_TEST_CFLAGS)
tests_unit_test_region_LDADD = $(HOST_TEST_LIBS) -lpthread
tests_unit_test_usage_SOURCES = tests/unit/test_usage.c
tests_unit_test_usage_CFLAGS = $(HOST_TEST_CFLAGS)
tests_unit_test_usage_LDADD = $(HOST_TEST_LIBS)
EXTRA_DIST += tests/e2e/regions.sh tests/e2e/usage.sh docs/api.md docs/config.md

# A sink whose failure is switched by a file: end-to-end tests of parking.
check_LTLIBRARIES += tests/plugins/switch.la
tests_plugins_switch_la_SOURCES = tests/plugins/switch_sink.c
tests_plugins_switch_la_LIBADD = $(CJSON_LIBS)
tests_plugins_switch_la_LDFLAGS = $(TEST_PLUGIN_LINK)
EXTRA_DIST += tests/e2e/parking.sh docs/parking.md
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_park
TESTS += tests/unit/test_park
endif
tests_unit_test_park_SOURCES = tests/unit/test_park.c
tests_unit_test_park_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws
tests_unit_test_park_CFLAGS = $(HOST_TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_park_LDADD = $(HOST_TEST_LIBS)

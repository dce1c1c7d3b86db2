# Avro input: Confluent wire format / local .avsc → CloudEvents JSON.
noinst_LTLIBRARIES += host/avro/libesavro.la
host_avro_libesavro_la_SOURCES = host/avro/es_avro.h host/avro/avro_int.h \
	host/avro/avro.c host/avro/shape.c host/avro/json.c host/avro/registry.c \
	host/avro/es_avro_hook.h host/avro/hook.c
host_avro_libesavro_la_CFLAGS = $(AM_CFLAGS) $(AVRO_CFLAGS) $(CURL_CFLAGS) \
	$(OPENSSL_CFLAGS)
host_avro_libesavro_la_LIBADD = $(AVRO_LIBS) $(CURL_LIBS) $(CJSON_LIBS) \
	$(OPENSSL_LIBS) -lm

if HAVE_CHECK
check_PROGRAMS += tests/unit/test_avro
tests_unit_test_avro_SOURCES = tests/unit/test_avro.c
tests_unit_test_avro_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/avro \
	-DES_AVRO_TEST_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_avro_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(AVRO_CFLAGS)
tests_unit_test_avro_LDADD = host/avro/libesavro.la $(CHECK_LIBS) \
	$(CURL_LIBS) $(CJSON_LIBS) -lpthread
TESTS += tests/unit/test_avro
endif

EXTRA_DIST += tests/unit/avro_fixtures.py tests/unit/avro_registry.py \
	tests/e2e/avro.sh docs/avro.md scripts/bench-avro

# The daemon decodes Avro topics through host/avro/hook.c.
host_libeshost_la_LIBADD += host/avro/libesavro.la

# Decode benchmark (scripts/bench-avro runs it).
noinst_PROGRAMS += host/avro/es-bench-avro
host_avro_es_bench_avro_SOURCES = host/avro/bench_avro.c
host_avro_es_bench_avro_LDADD = host/libeshost.la

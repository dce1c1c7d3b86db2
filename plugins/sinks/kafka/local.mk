# kafka sink: re-publishes events to a (possibly different) Kafka cluster.
pkgplugin_LTLIBRARIES += plugins/sinks/kafka/kafka.la
plugins_sinks_kafka_kafka_la_SOURCES = plugins/sinks/kafka/kafka.c \
	plugins/sinks/kafka/binding.c plugins/sinks/kafka/binding.h \
	host/src/json_edit.c
plugins_sinks_kafka_kafka_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws
plugins_sinks_kafka_kafka_la_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS) $(OPENSSL_CFLAGS)
# MSK IAM (issue 9): the sink signs its own OAUTHBEARER tokens.
plugins_sinks_kafka_kafka_la_LIBADD = host/aws/libesmsk.la host/aws/libesaws.la \
	$(RDKAFKA_LIBS) $(CJSON_LIBS) $(CURL_LIBS) $(OPENSSL_LIBS) -lm
plugins_sinks_kafka_kafka_la_LDFLAGS = $(PLUGIN_LDFLAGS)

if HAVE_CHECK
check_PROGRAMS += tests/unit/test_kafka_sink
tests_unit_test_kafka_sink_SOURCES = tests/unit/test_kafka_sink.c \
	tests/unit/kafka_sink_harness.c tests/unit/kafka_sink_harness.h
tests_unit_test_kafka_sink_CPPFLAGS = $(AM_CPPFLAGS) \
	-DES_TOP_BUILDDIR='"$(abs_top_builddir)"'
tests_unit_test_kafka_sink_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	$(RDKAFKA_CFLAGS)
tests_unit_test_kafka_sink_LDADD = $(CHECK_LIBS) $(RDKAFKA_LIBS) \
	$(CJSON_LIBS) -lpthread
TESTS += tests/unit/test_kafka_sink
endif

EXTRA_DIST += docs/kafka-sink.md tests/e2e/kafka_sink.sh \
	scripts/bench-kafka-sink

# The admin API, linked into the daemon.
noinst_LTLIBRARIES += api/libesapi.la
api_libesapi_la_SOURCES = api/admin.c api/admin.h \
	api/subscriptions.c api/subscriptions.h \
	api/topic_test.c api/topic_test.h
api_libesapi_la_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(RDKAFKA_CFLAGS) \
	$(OPENSSL_CFLAGS)
api_libesapi_la_LIBADD = $(MHD_LIBS) $(CJSON_LIBS) $(OPENSSL_LIBS)
EXTRA_DIST += api/openapi.yaml tests/e2e/api.sh tests/e2e/subscriptions.sh \
	tests/e2e/subs_property.py tests/e2e/subs_parking.sh

# Topic onboarding (docs/onboarding.md): the seed topics' folders, the
# unit test of the registry and usage counters, and the e2e test with its
# sample filter plugin.
EXTRA_DIST += service-teams-topics docs/onboarding.md tests/e2e/onboarding.sh
check_LTLIBRARIES += tests/e2e/samplefilter.la
tests_e2e_samplefilter_la_SOURCES = tests/e2e/sample_filter.c
tests_e2e_samplefilter_la_LIBADD = $(CJSON_LIBS)
tests_e2e_samplefilter_la_LDFLAGS = $(TEST_PLUGIN_LINK)
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_onboarding
TESTS += tests/unit/test_onboarding
endif
tests_unit_test_onboarding_SOURCES = tests/unit/test_onboarding.c
tests_unit_test_onboarding_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	$(RDKAFKA_CFLAGS) -DSRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_onboarding_LDADD = host/libeshost.la $(CHECK_LIBS)

# Subscriptions (docs/api.md): parsing, secret masking, the state file.
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_subscriptions
TESTS += tests/unit/test_subscriptions
endif
tests_unit_test_subscriptions_SOURCES = tests/unit/test_subscriptions.c
tests_unit_test_subscriptions_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	$(RDKAFKA_CFLAGS)
tests_unit_test_subscriptions_LDADD = host/libeshost.la $(CHECK_LIBS)

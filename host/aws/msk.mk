# Amazon MSK IAM (SASL/OAUTHBEARER) token signer and its librdkafka wiring.
# Linked into the daemon together with host/aws/libesaws.la (credentials).
noinst_LTLIBRARIES += host/aws/libesmsk.la
host_aws_libesmsk_la_SOURCES = host/aws/msk_iam.c host/aws/msk_iam.h
host_aws_libesmsk_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws
host_aws_libesmsk_la_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS) $(OPENSSL_CFLAGS)
host_aws_libesmsk_la_LIBADD = $(RDKAFKA_LIBS) $(OPENSSL_LIBS)

EXTRA_DIST += docs/msk-iam.md tests/unit/test_msk_iam_token.py

if HAVE_CHECK
check_PROGRAMS += tests/unit/test_msk_iam
tests_unit_test_msk_iam_SOURCES = tests/unit/test_msk_iam.c
tests_unit_test_msk_iam_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws \
	-DES_TEST_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_msk_iam_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	$(RDKAFKA_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_msk_iam_LDADD = host/aws/libesmsk.la host/aws/libesaws.la \
	$(CHECK_LIBS) $(RDKAFKA_LIBS) $(OPENSSL_LIBS) $(CURL_LIBS) $(CJSON_LIBS)
TESTS += tests/unit/test_msk_iam
endif

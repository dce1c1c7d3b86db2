# Shared AWS credentials provider chain, linked by the daemon (MSK IAM) and
# by the S3 sink plugin. A PIC convenience library: it ends up inside each.
noinst_LTLIBRARIES += host/aws/libesaws.la
host_aws_libesaws_la_SOURCES = host/aws/credentials.c host/aws/profile.c \
	host/aws/aws_int.h host/aws/es_aws_credentials.h
host_aws_libesaws_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(OPENSSL_CFLAGS) -fPIC
host_aws_libesaws_la_LIBADD = $(CURL_LIBS) $(OPENSSL_LIBS) $(CJSON_LIBS)

if HAVE_CHECK
check_PROGRAMS += tests/unit/test_aws_credentials
tests_unit_test_aws_credentials_SOURCES = tests/unit/test_aws_credentials.c
tests_unit_test_aws_credentials_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws \
	-DES_TEST_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_aws_credentials_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_aws_credentials_LDADD = host/aws/libesaws.la $(CHECK_LIBS)
TESTS += tests/unit/test_aws_credentials
endif
EXTRA_DIST += tests/unit/aws_creds_server.py

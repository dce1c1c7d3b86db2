# The admin HTTP API, linked into the daemon.
noinst_LTLIBRARIES += api/libesapi.la
api_libesapi_la_SOURCES = api/admin.c api/admin.h
api_libesapi_la_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(RDKAFKA_CFLAGS)
api_libesapi_la_LIBADD = $(MHD_LIBS) $(CJSON_LIBS)
EXTRA_DIST += api/openapi.yaml tests/e2e/api.sh

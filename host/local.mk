bin_PROGRAMS += host/eventstreamd host/es-broker

# The daemon's modules, also linked into the unit tests.
noinst_LTLIBRARIES += host/libeshost.la
host_libeshost_la_SOURCES = \
	host/src/config.c host/src/config.h host/src/json_keys.c \
	host/src/json_edit.c \
	host/src/decode.c host/src/decode.h \
	host/src/kafka.c host/src/kafka.h \
	host/src/loader.c host/src/loader.h \
	host/src/log.c host/src/log.h \
	host/src/metrics.c host/src/metrics.h \
	host/src/offsets.c host/src/offsets.h \
	host/src/pipeline.c host/src/pipeline.h host/src/pipeline_int.h \
	host/src/pipeline_consume.c host/src/pipeline_dry.c \
	host/src/pipeline_host.c host/src/pipeline_park.c \
	host/src/pipeline_route.c host/src/pipeline_stage.c \
	host/src/pipeline_call.c host/src/pipeline_subs.c \
	host/src/pipeline_subs_set.c host/src/pipeline_subs.h \
	host/src/pipeline_subs_int.h \
	host/src/subscriptions.c host/src/subscriptions.h \
	host/src/region.c host/src/region.h \
	host/src/state.c host/src/state.h \
	host/src/topics.c host/src/topics.h \
	host/src/usage.c host/src/usage.h
host_libeshost_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws
host_libeshost_la_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS) $(SQLITE_CFLAGS) \
	$(CURL_CFLAGS) $(OPENSSL_CFLAGS)
host_libeshost_la_LIBADD = host/aws/libesmsk.la host/aws/libesaws.la \
	$(RDKAFKA_LIBS) $(CJSON_LIBS) $(SQLITE_LIBS) $(CURL_LIBS) $(OPENSSL_LIBS)

host_eventstreamd_SOURCES = host/src/main.c host/src/dry_run_cli.c \
	host/src/dry_run_cli.h
host_eventstreamd_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS) -I$(top_srcdir)/api
host_eventstreamd_LDADD = api/libesapi.la host/libeshost.la

host_es_broker_SOURCES = host/src/broker.c
host_es_broker_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS)
host_es_broker_LDADD = host/libeshost.la

# The systemd unit, with the configured paths (make's, fully expanded).
if HAVE_SYSTEMD_UNIT
systemdsystemunit_DATA = host/eventstreamd.service
endif
host/eventstreamd.service: $(srcdir)/host/eventstreamd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) host && sed -e 's|@bindir[@]|$(bindir)|g' \
	    -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    $(srcdir)/host/eventstreamd.service.in >$@
CLEANFILES += host/eventstreamd.service
EXTRA_DIST += host/eventstreamd.service.in

# The manual page, with the same paths.
nodist_man_MANS = host/eventstreamd.8
host/eventstreamd.8: $(srcdir)/host/eventstreamd.8.in Makefile
	$(AM_V_GEN)$(MKDIR_P) host && sed -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    -e 's|@pkgplugindir[@]|$(pkgplugindir)|g' \
	    $(srcdir)/host/eventstreamd.8.in >$@
CLEANFILES += host/eventstreamd.8
EXTRA_DIST += host/eventstreamd.8.in

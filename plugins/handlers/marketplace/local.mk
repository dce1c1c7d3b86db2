# Build rules for plugins/handlers/marketplace: the order state machine
# handler (docs/marketplace-handler.md).
pkgplugin_LTLIBRARIES += plugins/handlers/marketplace/marketplace.la
plugins_handlers_marketplace_marketplace_la_SOURCES = \
	plugins/handlers/marketplace/marketplace.c \
	plugins/handlers/marketplace/order.c host/src/json_keys.c \
	plugins/handlers/marketplace/marketplace.h
plugins_handlers_marketplace_marketplace_la_CFLAGS = $(AM_CFLAGS) \
	$(OPENSSL_CFLAGS)
plugins_handlers_marketplace_marketplace_la_LIBADD = $(CJSON_LIBS) \
	$(OPENSSL_LIBS)
plugins_handlers_marketplace_marketplace_la_LDFLAGS = $(PLUGIN_LDFLAGS)

if HAVE_CHECK
# The unit test compiles the plugin's sources in and drives them through
# the vtable with a fake host.
check_PROGRAMS += tests/unit/test_marketplace
tests_unit_test_marketplace_SOURCES = tests/unit/test_marketplace.c \
	plugins/handlers/marketplace/marketplace.c \
	plugins/handlers/marketplace/order.c host/src/json_keys.c \
	plugins/handlers/marketplace/marketplace.h
tests_unit_test_marketplace_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	$(OPENSSL_CFLAGS)
tests_unit_test_marketplace_LDADD = $(CHECK_LIBS) $(CJSON_LIBS) \
	$(OPENSSL_LIBS)
TESTS += tests/unit/test_marketplace
endif

EXTRA_DIST += tests/e2e/marketplace.sh docs/marketplace-handler.md

# blockchain handler: mint-on-purchase ERC-721 tickets (docs/blockchain-handler.md)
pkgplugin_LTLIBRARIES += plugins/handlers/blockchain/blockchain.la
plugins_handlers_blockchain_blockchain_la_SOURCES = \
	plugins/handlers/blockchain/blockchain.c \
	plugins/handlers/blockchain/config.c \
	plugins/handlers/blockchain/ops.c \
	plugins/handlers/blockchain/chain.c \
	plugins/handlers/blockchain/abi.c \
	plugins/handlers/blockchain/events.c \
	plugins/handlers/blockchain/rpc.c host/src/json_keys.c \
	plugins/handlers/blockchain/bc.h
plugins_handlers_blockchain_blockchain_la_CFLAGS = $(AM_CFLAGS) \
	$(CURL_CFLAGS) $(OPENSSL_CFLAGS)
plugins_handlers_blockchain_blockchain_la_LIBADD = $(CURL_LIBS) \
	$(CJSON_LIBS) $(OPENSSL_LIBS) -lpthread
plugins_handlers_blockchain_blockchain_la_LDFLAGS = $(PLUGIN_LDFLAGS)

# Drives the plugin with a fake host against a real chain (tests/e2e).
noinst_PROGRAMS += tests/e2e/bc_driver
tests_e2e_bc_driver_SOURCES = tests/e2e/bc_driver.c \
	tests/unit/bc_fake_host.c tests/unit/bc_fake_host.h
tests_e2e_bc_driver_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/unit
tests_e2e_bc_driver_LDADD = $(CJSON_LIBS) -lpthread

if HAVE_CHECK
# ABI, ids and event shapes (the plugin's pure parts compiled in).
check_PROGRAMS += tests/unit/test_blockchain tests/unit/test_blockchain_plugin
tests_unit_test_blockchain_SOURCES = tests/unit/test_blockchain.c \
	plugins/handlers/blockchain/abi.c plugins/handlers/blockchain/events.c
tests_unit_test_blockchain_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/plugins/handlers/blockchain \
	-DBC_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_blockchain_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	$(OPENSSL_CFLAGS)
tests_unit_test_blockchain_LDADD = $(CHECK_LIBS) $(CJSON_LIBS) $(OPENSSL_LIBS)
# The whole plugin with a fake host and a loopback fake chain.
tests_unit_test_blockchain_plugin_SOURCES = \
	tests/unit/test_blockchain_plugin.c \
	tests/unit/bc_fake_host.c tests/unit/bc_fake_host.h \
	$(plugins_handlers_blockchain_blockchain_la_SOURCES)
tests_unit_test_blockchain_plugin_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/plugins/handlers/blockchain
tests_unit_test_blockchain_plugin_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) \
	$(CURL_CFLAGS) $(OPENSSL_CFLAGS) $(MHD_CFLAGS)
tests_unit_test_blockchain_plugin_LDADD = $(CHECK_LIBS) $(CURL_LIBS) \
	$(CJSON_LIBS) $(OPENSSL_LIBS) $(MHD_LIBS) -lpthread
TESTS += tests/unit/test_blockchain tests/unit/test_blockchain_plugin
endif

EXTRA_DIST += docs/blockchain-handler.md tests/e2e/blockchain.sh \
	tests/peers/chain/package.json tests/peers/chain/package-lock.json \
	tests/peers/chain/TicketNFT.sol tests/peers/chain/TicketNFT.hashes \
	tests/peers/chain/compile.js tests/peers/chain/deploy.js \
	tests/peers/chain/inspect.js

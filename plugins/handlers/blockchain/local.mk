# blockchain handler: mint-on-purchase ERC-721 tickets (docs/blockchain-handler.md)
pkgplugin_LTLIBRARIES += plugins/handlers/blockchain/blockchain.la
plugins_handlers_blockchain_blockchain_la_SOURCES = \
	plugins/handlers/blockchain/blockchain.c \
	plugins/handlers/blockchain/abi.c \
	plugins/handlers/blockchain/events.c \
	plugins/handlers/blockchain/rpc.c \
	plugins/handlers/blockchain/bc.h
plugins_handlers_blockchain_blockchain_la_CFLAGS = $(AM_CFLAGS) \
	$(CURL_CFLAGS) $(OPENSSL_CFLAGS)
plugins_handlers_blockchain_blockchain_la_LIBADD = $(CURL_LIBS) \
	$(CJSON_LIBS) $(OPENSSL_LIBS) -lpthread
plugins_handlers_blockchain_blockchain_la_LDFLAGS = $(PLUGIN_LDFLAGS)

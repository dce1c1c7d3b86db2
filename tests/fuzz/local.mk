# Fuzz targets (tests/fuzz/): scripts/fuzz builds them with clang's
# libFuzzer and runs them; here `make check` replays their saved inputs
# (tests/fuzz/corpus/TARGET/: seeds, minimised finds and the inputs of
# fixed bugs) through the same checks, under the build's sanitizers.
if HAVE_CHECK
check_PROGRAMS += tests/fuzz/replay-decode tests/fuzz/replay-lua \
	tests/fuzz/replay-avro tests/fuzz/replay-marketplace tests/fuzz/replay-subs \
	tests/fuzz/replay-config tests/fuzz/replay-aws tests/fuzz/replay-chain
TESTS += tests/fuzz/replay-decode tests/fuzz/replay-lua \
	tests/fuzz/replay-avro tests/fuzz/replay-marketplace tests/fuzz/replay-subs \
	tests/fuzz/replay-config tests/fuzz/replay-aws tests/fuzz/replay-chain
endif
FUZZ_SRC = tests/fuzz/replay.c tests/fuzz/fuzz.h host/src/decode.c \
	host/src/json_edit.c
tests_fuzz_replay_decode_SOURCES = tests/fuzz/fuzz_decode.c $(FUZZ_SRC)
tests_fuzz_replay_decode_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/decode"'
tests_fuzz_replay_decode_LDADD = $(CJSON_LIBS) $(OPENSSL_LIBS) -lpthread
# The plugin's sources are linked in (libFuzzer needs them instrumented;
# the replay uses the same program).
tests_fuzz_replay_lua_SOURCES = tests/fuzz/fuzz_lua.c $(FUZZ_SRC) \
	$(plugins_filters_lua_lua_la_SOURCES)
tests_fuzz_replay_lua_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/lua"'
tests_fuzz_replay_lua_CFLAGS = $(AM_CFLAGS) $(LUA_CFLAGS)
tests_fuzz_replay_lua_LDADD = $(LUA_LIBS) $(CJSON_LIBS) $(OPENSSL_LIBS) -lpthread -lm
tests_fuzz_replay_avro_SOURCES = tests/fuzz/fuzz_avro.c $(FUZZ_SRC)
tests_fuzz_replay_avro_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/avro \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/avro"'
tests_fuzz_replay_avro_CFLAGS = $(AM_CFLAGS) $(AVRO_CFLAGS)
tests_fuzz_replay_avro_LDADD = host/avro/libesavro.la $(CJSON_LIBS) $(OPENSSL_LIBS) \
	-lpthread
tests_fuzz_replay_marketplace_SOURCES = tests/fuzz/fuzz_marketplace.c \
	$(FUZZ_SRC) $(plugins_handlers_marketplace_marketplace_la_SOURCES)
tests_fuzz_replay_marketplace_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/marketplace"'
tests_fuzz_replay_marketplace_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
tests_fuzz_replay_marketplace_LDADD = $(CJSON_LIBS) $(OPENSSL_LIBS) -lpthread
tests_fuzz_replay_subs_SOURCES = tests/fuzz/fuzz_subs.c tests/fuzz/replay.c \
	tests/fuzz/fuzz.h host/src/subscriptions.c host/src/config.c host/src/json_keys.c \
	host/src/log.c
tests_fuzz_replay_subs_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/subs"'
tests_fuzz_replay_subs_LDADD = $(CJSON_LIBS) $(OPENSSL_LIBS) -lpthread
tests_fuzz_replay_config_SOURCES = tests/fuzz/fuzz_config.c tests/fuzz/replay.c \
	tests/fuzz/fuzz.h host/src/config.c host/src/json_keys.c host/src/log.c
tests_fuzz_replay_config_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/config"'
tests_fuzz_replay_config_LDADD = $(CJSON_LIBS) $(OPENSSL_LIBS) -lpthread
tests_fuzz_replay_aws_SOURCES = tests/fuzz/fuzz_aws.c tests/fuzz/replay.c \
	tests/fuzz/fuzz.h
tests_fuzz_replay_aws_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/host/aws \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/aws"'
tests_fuzz_replay_aws_LDADD = host/aws/libesaws.la $(CURL_LIBS) $(CJSON_LIBS) \
	$(OPENSSL_LIBS) -lpthread
tests_fuzz_replay_chain_SOURCES = tests/fuzz/fuzz_chain.c tests/fuzz/replay.c \
	tests/fuzz/fuzz.h plugins/handlers/blockchain/abi.c \
	plugins/handlers/blockchain/rpc.c
tests_fuzz_replay_chain_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/plugins/handlers/blockchain \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus/chain"'
tests_fuzz_replay_chain_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(OPENSSL_CFLAGS)
tests_fuzz_replay_chain_LDADD = $(CURL_LIBS) $(CJSON_LIBS) $(OPENSSL_LIBS) \
	-lpthread
EXTRA_DIST += tests/fuzz/corpus scripts/fuzz

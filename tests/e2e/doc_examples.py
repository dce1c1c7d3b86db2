#!/usr/bin/env python3
"""The examples in docs/*.md, taken out for tests/e2e/docs.sh to run.

  doc_examples.py configs OUTDIR PLUGIN_DIR
      Per doc, every ```json block that is daemon config (a whole file or
      some of its top-level keys, e.g. `"instances": {...}`) merged in the
      order the doc gives them into one config file: instances and routes
      added up, other keys replaced; brokers "embedded" unless the doc
      says. Paths are made local: plugin_dir, state_dir, a sink's "path"
      (into OUTDIR), a file the doc names that the tree has beside the
      examples (docs/examples/, the lua filter's examples/), CA files and
      the API's certificate to OUTDIR/ca.pem and its key to
      OUTDIR/ca-key.pem (the caller makes them), the API's token file to
      one written here, a URL that must be fetched at start
      (region.tenant_regions) to a local map.
      Prints "DOC<TAB>CONFIG" per file written.
  doc_examples.py events
      Every ```json block that is a CloudEvent, as "DOC:LINE<TAB>JSON".
  doc_examples.py block DOC MARKER
      The first fenced block of DOC holding MARKER, as written.

A file an example names that neither exists nor is in the tree's examples
is an error: the example would not work as written.
"""
import json
import os
import re
import sys

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE_DIRS = [os.path.join(SRC, "docs", "examples"),
                os.path.join(SRC, "plugins", "filters", "lua", "examples")]
CONFIG_KEYS = {"kafka", "instances", "routes", "region", "subscriptions",
               "pipeline", "retry", "log", "plugin_dir", "state_dir",
               "dead_letter_topic", "schema_registry", "api", "topics_dir"}
FILE_KEYS = {"script", "avro_schemas"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(doc):
    text = open(os.path.join(SRC, doc)).read()
    for m in FENCE.finditer(text):
        yield text[:m.start()].count("\n") + 1, m.group(1), m.group(2)


def as_json(body):
    """The block as JSON: a whole value, or members of an object."""
    for candidate in (body, "{" + body + "}"):
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    return None


def docs():
    return sorted("docs/" + f for f in os.listdir(os.path.join(SRC, "docs"))
                  if f.endswith(".md"))


def example_file(path, doc, line):
    if os.path.isabs(path) and os.path.exists(path):
        return path
    if os.path.exists(os.path.join(SRC, path)):
        return os.path.join(SRC, path)
    for d in EXAMPLE_DIRS:
        candidate = os.path.join(d, os.path.basename(path))
        if os.path.exists(candidate):
            return candidate
    sys.exit("%s:%d: the example names %s, which the tree does not have "
             "(docs/examples/ or the lua filter's examples/)" %
             (doc, line, path))


def localise(value, key, outdir, doc, line):
    if isinstance(value, dict):
        return {k: localise(v, key if key == "avro_schemas" else k, outdir,
                            doc, line) for k, v in value.items()}
    if isinstance(value, list):
        return [localise(v, key, outdir, doc, line) for v in value]
    if not isinstance(value, str):
        return value
    if key == "path" and value.startswith("/"):
        return os.path.join(outdir, os.path.basename(value))
    if key in ("ca_file", "tls_cert"):  # the caller's throwaway CA
        return os.path.join(outdir, "ca.pem")
    if key == "tls_key":
        return os.path.join(outdir, "ca-key.pem")
    if key == "token_file":
        local = os.path.join(outdir, "api-token")
        with open(local, "w") as f:
            f.write("docs-token\n")
        return local
    if key in FILE_KEYS:
        return example_file(value, doc, line)
    if key == "tenant_regions" and "://" in value:
        local = os.path.join(outdir, "tenant-regions.json")
        with open(local, "w") as f:
            json.dump({"tenant-a": "eu-west-1"}, f)
        return local
    return value


def merged_config(doc, outdir):
    config = {"kafka": {"brokers": "embedded"}, "instances": {}, "routes": []}
    found = 0
    for line, lang, body in blocks(doc):
        value = as_json(body) if lang == "json" else None
        if not isinstance(value, dict) or not set(value) & CONFIG_KEYS:
            continue
        found += 1
        for k, v in localise(value, None, outdir, doc, line).items():
            if k == "instances":
                config["instances"].update(v)
            elif k == "routes":
                config["routes"] += v
            else:
                config[k] = v
    return config if found else None


def cmd_configs(outdir, plugin_dir):
    for doc in docs():
        config = merged_config(doc, outdir)
        if config is None:
            continue
        config["plugin_dir"] = plugin_dir
        config["state_dir"] = os.path.join(outdir, "state")
        name = os.path.join(outdir, os.path.basename(doc) + ".json")
        with open(name, "w") as f:
            json.dump(config, f, indent=1)
        print("%s\t%s" % (doc, name))


def cmd_events():
    for doc in docs():
        for line, lang, body in blocks(doc):
            value = as_json(body) if lang == "json" else None
            if isinstance(value, dict) and "specversion" in value:
                print("%s:%d\t%s" % (doc, line, json.dumps(value)))


def cmd_block(doc, marker):
    for _, _, body in blocks(doc):
        if marker in body:
            sys.stdout.write(body)
            return
    sys.exit("%s: no block holds %r" % (doc, marker))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "configs" and len(sys.argv) == 4:
        cmd_configs(sys.argv[2], sys.argv[3])
    elif cmd == "events" and len(sys.argv) == 2:
        cmd_events()
    elif cmd == "block" and len(sys.argv) == 4:
        cmd_block(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

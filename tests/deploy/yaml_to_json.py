"""Prints the YAML documents of each file given as JSON: {"path": [doc, ...], ...}.

The Node tests in tests/deploy read the compose file, the Kubernetes
manifests and the collector config through this (PyYAML, safe loader)."""

import json
import sys

import yaml

out = {}
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        out[path] = [doc for doc in yaml.safe_load_all(f) if doc is not None]
json.dump(out, sys.stdout)

"""Write the Job templates embedded in rendered ConfigMaps out as manifests of their own.

The trigger submits them verbatim, so checkov must scan them like any other workload;
inside a ConfigMap they are only a string to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def main(rendered: str, out: str) -> int:
    docs = []
    for doc in yaml.safe_load_all(Path(rendered).read_text()):
        if doc and doc.get("kind") == "ConfigMap":
            docs += [yaml.safe_load(text) for key, text in (doc.get("data") or {}).items()
                     if "job" in key and key.endswith((".yaml", ".yml"))]
    for doc in docs:
        # checkov flags a missing namespace as "default namespace"; generateName is kept.
        doc["metadata"].setdefault("name", doc["metadata"].get("generateName", "job").rstrip("-"))
    Path(out).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    print(f"{out}: {len(docs)} job template(s)")
    return 0 if docs else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

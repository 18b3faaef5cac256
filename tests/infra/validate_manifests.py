"""Validate rendered manifests against Kubernetes and vendored custom-resource schemas.

kubernetes-validate knows the built-in kinds only and merely warns on anything else, so a
typo in an InferenceService would pass. Here every document must validate:
built-in kinds through kubernetes-validate (strict: unknown fields fail), custom kinds
through a schema in --schemas named `<kind>-<group>-<version>.json`, resolved against the
same Kubernetes definitions. Job templates carried in ConfigMaps (`*job*.yaml` keys) are
parsed and validated as well, since the trigger submits them verbatim.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import importlib_resources
import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource


def documents(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
        if not doc:
            continue
        where = f"{path}#{index}"
        yield where, doc
        if doc.get("kind") == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                if re.search(r"job.*\.ya?ml$", key):
                    yield f"{where}:data.{key}", yaml.safe_load(text)


def definitions(version: str) -> dict[str, Any]:
    available = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(version)]
    if not available:
        raise SystemExit(f"kubernetes-validate has no schemas for {version}")
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    return json.loads((root / f"v{available[-1]}-local-strict" / "_definitions.json").read_text())


def custom_schema_name(doc: dict[str, Any]) -> str:
    group, _, version = doc["apiVersion"].rpartition("/")
    return f"{doc['kind'].lower()}-{group.split('.')[0]}-{version}.json"


def validate_custom(doc: dict[str, Any], schema_path: Path, defs: dict[str, Any]) -> list[str]:
    schema = json.loads(schema_path.read_text())
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--kubernetes-version", default="1.33")
    parser.add_argument("--schemas", type=Path, required=True, help="vendored CRD schemas")
    args = parser.parse_args(argv)

    defs = definitions(args.kubernetes_version)
    failures = checked = 0
    for path in args.files:
        for where, doc in documents(path):
            checked += 1
            name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name') or (doc.get('metadata') or {}).get('generateName')}"
            custom = args.schemas / custom_schema_name(doc)
            if custom.exists():
                errors = validate_custom(doc, custom, defs)
            else:
                try:
                    kv.validate(doc, args.kubernetes_version, strict=True)
                    errors = []
                except kv.ValidationError as error:
                    errors = [f"{'.'.join(map(str, error.path))}: {error.message}"]
                except kv.SchemaNotFoundError as error:
                    errors = [f"no schema ({error.message}); vendor one in {args.schemas}"]
            for message in errors:
                print(f"FAIL {where} {name}: {message}")
            failures += bool(errors)
    print(f"validate_manifests: {checked} documents, {failures} failed "
          f"(Kubernetes {args.kubernetes_version}, strict)")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main())

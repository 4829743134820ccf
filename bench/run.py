"""``make bench``: start the local stack once, run every ``bench/bench_*.py`` in one process.

Each module exposes ``run(env: BenchEnv) -> list[dict]``. Figures measured side by side in one run
are comparable (ratios); absolute times on a shared 2-core machine are noisy.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import time

from bench.harness import BenchEnv
from infra.local.stack import Ports, Stack

HERE = pathlib.Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small n: a smoke run")
    parser.add_argument("--only", help="run only bench_<name>.py")
    parser.add_argument("--results", help="folder for latest.json (default bench/results)")
    args = parser.parse_args()

    stack = Stack(Ports.free(), project_id="demo-payloom-bench",
                  components=tuple(c for c in Stack.ALL if c != "scheduler"))
    print("starting the local stack…", file=sys.stderr)
    stack.start()
    try:
        import functions_framework

        from infra.local import wiring
        from shared.platform import manifest
        from shared.platform.deps import get_deps

        wiring.install_local_adapters()

        def client(name: str):
            fn = manifest.function(name)
            return functions_framework.create_app(
                target=fn["entry_point"],
                source=str(manifest.REPO_ROOT / "functions" / name / "main.py")).test_client()

        env = BenchEnv(base_url=f"http://127.0.0.1:{stack.ports.gateway}",
                       service_token=stack.task_secret, deps=get_deps(), client=client, quick=args.quick)
        results: dict[str, list[dict]] = {}
        modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
        if args.only:
            modules = [m for m in modules if m == f"bench_{args.only}"]
        for name in modules:
            print(f"running {name}…", file=sys.stderr)
            t0 = time.time()
            module = importlib.import_module(f"bench.{name}")
            results[name] = module.run(env)
            print(f"  {name} done in {time.time() - t0:.1f}s", file=sys.stderr)
    finally:
        stack.stop()
    print(json.dumps(results, indent=2))
    _print_table(results)
    out = pathlib.Path(args.results) if args.results else HERE / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    return 0


def _print_table(results: dict[str, list[dict]]) -> None:
    print("\n== Payloom benchmark ==")
    for module, rows in results.items():
        print(f"\n[{module}]")
        for row in rows:
            name = row.get("name", "?")
            rest = ", ".join(f"{k}={v}" for k, v in row.items() if k != "name")
            print(f"  {name:<48} {rest}")


if __name__ == "__main__":
    sys.exit(main())

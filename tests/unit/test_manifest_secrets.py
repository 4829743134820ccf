"""Every Secret Manager secret the manifest mounts is read by a setting (no dead or misnamed secret)."""
import importlib
import pkgutil

from pydantic_settings import BaseSettings

import shared
from shared.platform.manifest import load_manifest


def _settings_env_names() -> set[str]:
    for mod in pkgutil.walk_packages(shared.__path__, "shared."):
        if ".contracts" not in mod.name:
            importlib.import_module(mod.name)
    names = set()

    def walk(cls):
        for sub in cls.__subclasses__():
            prefix = sub.model_config.get("env_prefix", "")
            for field_name, field in sub.model_fields.items():
                names.add((prefix + field_name).upper())
                alias = field.validation_alias
                for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
                    if isinstance(choice, str):
                        names.add(choice.upper())
            walk(sub)
    walk(BaseSettings)
    return names


def test_every_mounted_secret_feeds_a_setting():
    manifest = load_manifest()
    env_names = _settings_env_names()
    used = {s for fn in manifest["functions"] for s in fn.get("secrets", [])}
    assert used <= set(manifest["secrets"]), used - set(manifest["secrets"])
    for secret in used:
        env = secret.upper().replace("-", "_")  # how Terraform mounts it
        assert env in env_names, f"secret {secret} is mounted as {env}, which no setting reads"

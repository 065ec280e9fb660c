"""Layered configuration: defaults < kit.toml < the lead's fieldkit.toml < environment variables.

Where things live (DESIGN.md): with ``FIELDKIT_HOME`` set everything is under it; otherwise the
appliance paths are used. Each path can also be pointed elsewhere by its own variable.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kit.files import write_durably
from kit.settings import Setting

FEATURE_PACKAGES = ("checkin", "pos", "power", "cues", "sync", "lead")
KIT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

APPLIANCE_KIT_TOML = Path("/etc/fieldkit/kit.toml")
APPLIANCE_BOOT_TOML = Path("/boot/firmware/fieldkit.toml")
APPLIANCE_DATA_DIR = Path("/var/lib/fieldkit")


class ConfigError(Exception):
    """A settings file or variable is wrong; the message names the file and the key."""


def all_settings() -> dict[str, Setting]:
    from kit.settings import SETTINGS

    found: dict[str, Setting] = {}
    modules = [SETTINGS, importlib.import_module("kit.appliance.settings").SETTINGS,
               importlib.import_module("kit.update.settings").SETTINGS]
    modules += [importlib.import_module(f"{pkg}.settings").SETTINGS for pkg in FEATURE_PACKAGES]
    for settings in modules:
        for s in settings:
            if s.key in found:
                raise RuntimeError(f"setting {s.key} declared twice")
            found[s.key] = s
    return found


@dataclass(frozen=True)
class Paths:
    home: Path | None
    kit_toml: Path
    boot_toml: Path
    data_dir: Path

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ) -> Paths:
        home = env.get("FIELDKIT_HOME")
        if home:
            h = Path(home).expanduser().absolute()
            defaults = (h / "kit.toml", h / "fieldkit.toml", h / "var")
        else:
            h = None
            defaults = (APPLIANCE_KIT_TOML, APPLIANCE_BOOT_TOML, APPLIANCE_DATA_DIR)
        return cls(
            home=h,
            kit_toml=Path(env.get("FIELDKIT_KIT_TOML") or defaults[0]),
            boot_toml=Path(env.get("FIELDKIT_BOOT_TOML") or defaults[1]),
            data_dir=Path(env.get("FIELDKIT_DATA_DIR") or defaults[2]),
        )


@dataclass
class Config:
    paths: Paths
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def kit_id(self) -> str:
        return self.values["kit.id"]

    @property
    def site(self) -> str:
        return self.values["kit.site"]

    @property
    def simulate(self) -> bool:
        return bool(self.values["kit.simulate"])

    @property
    def data_dir(self) -> Path:
        return self.paths.data_dir

    @property
    def db_path(self) -> Path:
        return self.paths.data_dir / "kit.db"

    @property
    def secrets_dir(self) -> Path:
        return self.paths.data_dir / "secrets"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.values["kit.timezone"])

    def backend(self, key: str) -> str:
        """The backend a device should use: every device is simulated when ``kit.simulate`` is on."""
        value = self.values[key]
        return "sim" if self.simulate and value not in ("none",) else value

    def with_values(self, **overrides: Any) -> Config:
        """A copy with some values replaced (keys with '__' for '.'); for tests and tools."""
        values = dict(self.values)
        sources = dict(self.sources)
        for k, v in overrides.items():
            key = k.replace("__", ".")
            values[key] = v
            sources[key] = "override"
        return Config(self.paths, values, sources)


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _coerce(setting: Setting, value: Any, where: str) -> Any:
    kind = setting.kind
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        raise ConfigError(f"{where}: '{setting.key}' must be {kind}, got {type(value).__name__} {value!r}")
    if kind == "float":
        value = float(value)
    if setting.choices and value not in setting.choices:
        raise ConfigError(f"{where}: '{setting.key}' must be one of {', '.join(setting.choices)}, got {value!r}")
    return value


def _from_env_string(setting: Setting, raw: str, where: str) -> Any:
    kind = setting.kind
    try:
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "list":
            return [p.strip() for p in raw.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"{where}: '{setting.key}' must be {kind}, got {raw!r}") from None
    return raw


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the file or move it away") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied)") from None


def load_config(env: dict[str, str] | os._Environ | None = None) -> Config:
    env = os.environ if env is None else env
    paths = Paths.from_env(env)
    settings = all_settings()
    values = {k: s.default for k, s in settings.items()}
    sources = {k: "default" for k in settings}
    for path in (paths.kit_toml, paths.boot_toml):
        if not path.exists():
            continue
        for key, value in _flatten(read_toml(path)).items():
            setting = settings.get(key)
            if setting is None:
                raise ConfigError(f"{path}: unknown setting '{key}' (see `fieldkit config show` for every setting)")
            values[key] = _coerce(setting, value, str(path))
            sources[key] = str(path)
    for key, setting in settings.items():
        if setting.env_name in env:
            values[key] = _coerce(setting, _from_env_string(setting, env[setting.env_name], setting.env_name),
                                  setting.env_name)
            sources[key] = f"env {setting.env_name}"
    _validate(values, sources)
    return Config(paths, values, sources)


# Topic names a kit id would collide with: fieldkit/<kit>/... must never be fieldkit/site/...
RESERVED_KIT_IDS = frozenset({"site"})


def _validate(values: dict[str, Any], sources: dict[str, str]) -> None:
    if not KIT_ID_RE.match(values["kit.id"]):
        raise ConfigError(f"{sources['kit.id']}: 'kit.id' {values['kit.id']!r} may only use letters, digits, - and _")
    if values["kit.id"].lower() in RESERVED_KIT_IDS:
        raise ConfigError(f"{sources['kit.id']}: 'kit.id' {values['kit.id']!r} is reserved: fieldkit/site/# is the "
                          "topic tree every kit of a site shares; choose another name")
    if not KIT_ID_RE.match(values["kit.site"]):
        raise ConfigError(f"{sources['kit.site']}: 'kit.site' {values['kit.site']!r} may only use letters, digits, - and _")
    try:
        ZoneInfo(values["kit.timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{sources['kit.timezone']}: 'kit.timezone' {values['kit.timezone']!r} is not a known time zone "
            "(use an IANA name such as Europe/Berlin)"
        ) from None
    from kit.runners import parse_groups  # a service named twice or unknown: refused like any bad setting

    parse_groups(values["service.groups"], ["web", "status", *FEATURE_PACKAGES], sources["service.groups"])
    if not re.fullmatch(r"[A-Z]{3}", values["kit.currency"]):
        raise ConfigError(f"{sources['kit.currency']}: 'kit.currency' must be a 3-letter ISO code such as EUR")


def update_toml_file(path: Path, updates: dict[str, Any]) -> None:
    """Set dotted keys in a TOML settings file, keeping the others (comments are not kept)."""
    current = read_toml(path) if path.exists() else {}
    flat = _flatten(current)
    flat.update(updates)
    write_durably(path, dump_toml(flat))


def dump_toml(flat: dict[str, Any]) -> str:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in sorted(flat.items()):
        section, _, name = key.rpartition(".")
        sections.setdefault(section, {})[name] = value
    lines = []
    for section, items in sections.items():
        if section:
            lines.append(f"\n[{section}]")
        for name, value in items.items():
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    s = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'

"""Config layering: defaults < kit.toml < fieldkit.toml < environment, and errors that name file and key."""

import pytest

from kit.config import ConfigError, load_config


def env_for(tmp_path, **extra):
    return {"FIELDKIT_HOME": str(tmp_path), **extra}


def test_layers_override_in_order_and_say_where_each_value_came_from(tmp_path):
    (tmp_path / "kit.toml").write_text('[kit]\ntimezone = "Europe/Berlin"\ncurrency = "GBP"\n[web]\nport = 9000\n')
    (tmp_path / "fieldkit.toml").write_text('[kit]\nid = "door2"\ncurrency = "CHF"\n')
    config = load_config(env_for(tmp_path, FIELDKIT_WEB_PORT="9100"))
    assert config["kit.timezone"] == "Europe/Berlin"
    assert config.sources["kit.timezone"] == str(tmp_path / "kit.toml")
    assert config["kit.currency"] == "CHF"  # the lead's per-kit file beats the image-wide one
    assert config.sources["kit.currency"] == str(tmp_path / "fieldkit.toml")
    assert config["web.port"] == 9100 and config.sources["web.port"] == "env FIELDKIT_WEB_PORT"
    assert config["mqtt.port"] == 1883 and config.sources["mqtt.port"] == "default"
    assert config.kit_id == "door2"
    assert config.data_dir == tmp_path / "var"


def test_unknown_key_names_the_file_and_the_key(tmp_path):
    (tmp_path / "fieldkit.toml").write_text('[kit]\nidd = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_config(env_for(tmp_path))
    assert str(tmp_path / "fieldkit.toml") in str(e.value) and "kit.idd" in str(e.value)


def test_wrong_type_names_the_file_and_the_key(tmp_path):
    (tmp_path / "kit.toml").write_text('[web]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as e:
        load_config(env_for(tmp_path))
    assert "kit.toml" in str(e.value) and "web.port" in str(e.value) and "int" in str(e.value)


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(env_for(tmp_path, FIELDKIT_MQTT_PORT="abc"))
    assert "FIELDKIT_MQTT_PORT" in str(e.value)


def test_broken_toml_is_a_clear_error(tmp_path):
    (tmp_path / "kit.toml").write_text("[kit\nid = 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(env_for(tmp_path))
    assert "not valid TOML" in str(e.value) and "kit.toml" in str(e.value)


def test_timezone_and_kit_id_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="time zone"):
        load_config(env_for(tmp_path, FIELDKIT_KIT_TIMEZONE="Mars/Olympus"))
    with pytest.raises(ConfigError, match="kit.id"):
        load_config(env_for(tmp_path, FIELDKIT_KIT_ID="door 1/#"))


def test_appliance_paths_without_fieldkit_home():
    config = load_config({})
    assert str(config.paths.kit_toml) == "/etc/fieldkit/kit.toml"
    assert str(config.data_dir) == "/var/lib/fieldkit"


def test_every_setting_has_help_and_a_typed_default():
    from kit.config import all_settings

    for key, s in all_settings().items():
        assert s.help.strip(), f"{key} has no help"
        assert s.kind in ("str", "int", "float", "bool", "list"), key


def test_a_kit_cannot_be_called_site(tmp_path):
    """fieldkit/site/# is the site tree: a kit named site would publish its commands into it."""
    for name in ("site", "SITE"):
        with pytest.raises(ConfigError, match="reserved.*fieldkit/site"):
            load_config(env_for(tmp_path, FIELDKIT_KIT_ID=name))
    assert load_config(env_for(tmp_path, FIELDKIT_KIT_ID="site2")).kit_id == "site2"

"""The Mosquitto configuration the kit writes at boot, run in real brokers: hub, bridged kit, stand-alone."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kit.appliance.broker import BrokerFiles, render_conf, write_broker_config
from kit.config import load_config
from kit.testing import free_port, mosquitto_binary, port_open, wait_for


def kit_config(tmp_path: Path, name: str, **settings) -> tuple:
    home = tmp_path / name
    home.mkdir()
    env = {"FIELDKIT_HOME": str(home), "FIELDKIT_KIT_ID": name, "FIELDKIT_KIT_SITE": "fair",
           "FIELDKIT_MQTT_PORT": str(free_port())}
    env.update({f"FIELDKIT_{k.upper()}": str(v) for k, v in settings.items()})
    config = load_config(env)
    files = BrokerFiles(home / "conf.d/fieldkit.conf", home / "fieldkit.passwd", home / "fieldkit.acl",
                        home / "mosquitto-data")
    return config, files


class Broker:
    """Mosquitto started the appliance's way: a main file that includes conf.d, where the kit writes."""

    def __init__(self, conf: Path):
        main = conf.parent.parent / "mosquitto.conf"
        # As root Mosquitto would drop to its own user, who cannot enter pytest's private temp dirs.
        main.write_text(f"user root\nlog_dest stderr\ninclude_dir {conf.parent}\n")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(main)], stderr=subprocess.PIPE)

    def wait_port(self, port: int) -> None:
        wait_for(lambda: port_open("127.0.0.1", port) or self.proc.poll() is not None, 10, what="mosquitto")
        assert self.proc.poll() is None, self.proc.stderr.read().decode()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def client(port: int, username: str = "", password: str = "", refused: threading.Event | None = None
           ) -> tuple[mqtt.Client, list, threading.Event]:
    received: list[tuple[str, dict]] = []
    connected = threading.Event()
    refused = refused or threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    if username:
        c.username_pw_set(username, password)
    c.on_connect = lambda cl, u, f, rc, p: refused.set() if rc.is_failure else connected.set()
    c.on_message = lambda cl, u, m: received.append((m.topic, json.loads(m.payload)))
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, received, connected


@pytest.fixture
def brokers():
    started: list[Broker] = []
    yield started
    for b in started:
        b.stop()


def test_a_stand_alone_kit_has_only_its_local_listener(tmp_path):
    config, files = kit_config(tmp_path, "solo")
    conf = render_conf(config, files)
    assert f"listener {config['mqtt.port']} 127.0.0.1" in conf
    assert "connection " not in conf and "0.0.0.0" not in conf
    assert f"persistence_location {files.persistence_dir}/" in conf


def test_site_checkins_cross_the_bridge_both_ways_and_nothing_else(tmp_path, brokers):
    lan_port = free_port()
    hub, hub_files = kit_config(tmp_path, "hub", site_hub="true", site_mqtt_password="site secret 1",
                                site_mqtt_port=lan_port)
    door, door_files = kit_config(tmp_path, "door2", site_hub_address="127.0.0.1",
                                  site_mqtt_password="site secret 1", site_mqtt_port=lan_port)
    write_broker_config(hub, hub_files)
    write_broker_config(door, door_files)
    assert "site secret 1" not in hub_files.password_file.read_text(), "the hub stores the password hashed"
    hub_broker = Broker(hub_files.conf)
    brokers.append(hub_broker)
    hub_broker.wait_port(lan_port)
    door_broker = Broker(door_files.conf)
    brokers.append(door_broker)
    door_broker.wait_port(door["mqtt.port"])

    on_hub, hub_got, hub_ok = client(hub["mqtt.port"])
    on_door, door_got, door_ok = client(door["mqtt.port"])
    assert hub_ok.wait(5) and door_ok.wait(5)
    on_hub.subscribe("fieldkit/#", qos=1)
    on_door.subscribe("fieldkit/#", qos=1)

    def bridged() -> bool:  # the bridge connects in the background: probe until a message crosses
        on_door.publish("fieldkit/site/fair/checkin/door2", json.dumps({"probe": True}), qos=1)
        return any(t == "fieldkit/site/fair/checkin/door2" for t, _ in hub_got)

    wait_for(bridged, 15, interval=0.5, what="the bridge from door2 to the hub")
    on_hub.publish("fieldkit/site/fair/checkin/hub", json.dumps({"seq": 7}), qos=1)
    on_door.publish("fieldkit/door2/pos/event/sale", json.dumps({"private": True}), qos=1)
    wait_for(lambda: ("fieldkit/site/fair/checkin/hub", {"seq": 7}) in door_got, 10, what="hub -> door2")
    # The site link's catch-up requests (kit/sitelink.py) cross the same bridge.
    on_door.publish("fieldkit/site/fair/catchup/checkin/door2", json.dumps({"from": "door2", "cursors": {}}), qos=1)
    wait_for(lambda: any(t == "fieldkit/site/fair/catchup/checkin/door2" for t, _ in hub_got), 10, what="catch-up")
    on_hub.publish("fieldkit/hub/status", json.dumps({"state": "online"}), qos=1)
    wait_for(lambda: any(t == "fieldkit/hub/status" for t, _ in hub_got), 5, what="hub's own message")
    assert not any(t == "fieldkit/door2/pos/event/sale" for t, _ in hub_got), "a kit's own topics stay local"
    assert not any(t == "fieldkit/hub/status" for t, _ in door_got)
    for c in (on_hub, on_door):
        c.loop_stop()
        c.disconnect()


def test_the_hub_lan_listener_refuses_strangers_and_fences_the_site_user(tmp_path, brokers):
    lan_port = free_port()
    hub, files = kit_config(tmp_path, "hub", site_hub="true", site_mqtt_password="site secret 1",
                            site_mqtt_port=lan_port)
    write_broker_config(hub, files)
    broker = Broker(files.conf)
    brokers.append(broker)
    broker.wait_port(lan_port)
    for user, password in (("", ""), ("site", "wrong password")):
        refused = threading.Event()
        c, _, ok = client(lan_port, user, password, refused)
        assert refused.wait(5) and not ok.is_set(), f"{user or 'anonymous'} must be refused on the LAN listener"
        c.loop_stop()
    site, site_got, ok = client(lan_port, "site", "site secret 1")
    assert ok.wait(5)
    local, local_got, local_ok = client(hub["mqtt.port"])
    assert local_ok.wait(5)
    site.subscribe("fieldkit/#", qos=1)
    local.subscribe("fieldkit/#", qos=1)
    wait_for(lambda: not site.publish("fieldkit/site/fair/checkin/x", json.dumps({"n": 1}), qos=1).rc
             and any(t == "fieldkit/site/fair/checkin/x" for t, _ in local_got), 5, interval=0.3, what="site topic")
    site.publish("fieldkit/hub/pos/cmd/print", json.dumps({"evil": True}), qos=1)
    local.publish("fieldkit/hub/status", json.dumps({"state": "online"}), qos=1)
    wait_for(lambda: any(t == "fieldkit/hub/status" for t, _ in local_got), 5, what="local message")
    assert not any(t == "fieldkit/hub/pos/cmd/print" for t, _ in local_got), "the site user may not command the kit"
    assert not any(t == "fieldkit/hub/status" for t, _ in site_got), "the site user may not read the kit's own topics"
    for c in (site, local):
        c.loop_stop()
        c.disconnect()


def test_turning_the_hub_off_removes_its_password_file(tmp_path):
    hub, files = kit_config(tmp_path, "hub", site_hub="true", site_mqtt_password="site secret 1")
    write_broker_config(hub, files)
    assert files.password_file.exists()
    plain, _ = kit_config(tmp_path, "plain")
    write_broker_config(plain, files)
    assert not files.password_file.exists() and not files.acl_file.exists()
    assert "password_file" not in files.conf.read_text()


def test_the_appliance_broker_drops_a_10_mb_body_and_passes_100_kb(tmp_path, brokers):
    config, files = kit_config(tmp_path, "sizes")
    write_broker_config(config, files)
    brokers.append(Broker(files.conf))
    port = config["mqtt.port"]
    brokers[-1].wait_port(port)
    sizes: dict[str, int] = {}
    sub = mqtt.Client(CallbackAPIVersion.VERSION2)
    sub.on_message = lambda cl, u, m: sizes.__setitem__(m.topic, len(m.payload))
    sub.connect("127.0.0.1", port)
    sub.subscribe("fieldkit/#", qos=1)
    sub.loop_start()
    pub, _, connected = client(port)
    try:
        assert connected.wait(5)
        wait_for(lambda: (pub.publish("fieldkit/probe", b"{}", qos=1), "fieldkit/probe" in sizes)[1], 5, 0.1,
                 what="subscription active")
        pub.publish("fieldkit/sizes/cues/cmd/fire", b"[" * (10 * 1024 * 1024), qos=1).wait_for_publish(20)
        pub.publish("fieldkit/site/fair/checkin/sizes", b"x" * (100 * 1024), qos=1).wait_for_publish(5)
        pub.publish("fieldkit/marker", b"{}", qos=1).wait_for_publish(5)
        wait_for(lambda: "fieldkit/marker" in sizes, 10, what="the marker after both")
        assert sizes.get("fieldkit/site/fair/checkin/sizes") == 100 * 1024
        assert "fieldkit/sizes/cues/cmd/fire" not in sizes
    finally:
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()


def test_mosquitto_as_its_own_user_keeps_its_persistence_under_the_private_data_dir(tmp_path):
    """As on the appliance: Mosquitto starts as root, drops to user mosquitto, saves into <data>/mosquitto."""
    import os
    import pwd
    import shutil
    import tempfile

    from kit.initkit import secure_data_dir

    if os.geteuid() != 0:
        pytest.skip("needs root: Mosquitto only changes to its own user when started as root (the appliance's case)")
    pwd.getpwnam("mosquitto")  # the Debian package's user; missing means the package is not installed right
    outer = Path(tempfile.mkdtemp(prefix="fk-persist-"))  # pytest's own temp dirs are closed to other users
    try:
        outer.chmod(0o755)
        data = outer / "data"
        data.mkdir()
        (data / "secrets").mkdir()
        secure_data_dir(data)
        assert oct(data.stat().st_mode & 0o777) == "0o751"
        config, _ = kit_config(tmp_path, "persist")
        files = BrokerFiles(outer / "etc/conf.d/fieldkit.conf", outer / "etc/fieldkit.passwd",
                            outer / "etc/fieldkit.acl", data / "mosquitto")
        write_broker_config(config, files)
        (outer / "etc").chmod(0o755)
        main = outer / "etc/mosquitto.conf"
        main.write_text(f"log_dest stderr\ninclude_dir {files.conf.parent}\n")  # no `user root`: it drops
        port = config["mqtt.port"]

        def start() -> subprocess.Popen:
            proc = subprocess.Popen([mosquitto_binary(), "-c", str(main)], stderr=subprocess.PIPE)
            wait_for(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 10, what="mosquitto")
            assert proc.poll() is None, proc.stderr.read().decode()
            return proc

        proc = start()
        pub, _, connected = client(port)
        assert connected.wait(5)
        pub.publish("fieldkit/persist/status", json.dumps({"state": "online"}), qos=1, retain=True).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        proc.terminate()
        err = proc.communicate(timeout=10)[1].decode()
        assert "Permission denied" not in err and "Error saving" not in err, err
        saved = data / "mosquitto" / "mosquitto.db"
        assert saved.exists() and saved.stat().st_uid == pwd.getpwnam("mosquitto").pw_uid
        proc = start()
        try:
            sub, received, connected = client(port)
            assert connected.wait(5)
            sub.subscribe("fieldkit/persist/#", qos=1)
            wait_for(lambda: received, 5, what="the retained message, restored from persistence")
            assert received[0] == ("fieldkit/persist/status", {"state": "online"})
            sub.loop_stop()
            sub.disconnect()
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        shutil.rmtree(outer, ignore_errors=True)

"""Settings of the appliance: the kit's own Wi-Fi, its uplink, and its place on a multi-kit site.

A lead sets these in ``fieldkit.toml`` on the SD card's boot partition (``image-build/personalise.sh``
writes them); the kit re-applies them at every boot.
"""

from kit.settings import Setting

SETTINGS = [
    Setting("network.hotspot_ssid", "", "Name of the kit's own Wi-Fi hotspot; empty means fieldkit-<kit id>."),
    Setting("network.hotspot_password", "",
            "Password of the kit's hotspot (8-63 characters); empty means one is made at first boot and printed on the setup slip.",
            secret=True),
    Setting("network.hotspot_interface", "wlan0", "Wi-Fi interface that carries the hotspot (the Pi's onboard radio)."),
    Setting("network.hotspot_address", "10.42.0.1", "The kit's address on its own hotspot (NetworkManager's shared network)."),
    Setting("network.uplink_ssid", "", "Known Wi-Fi network the kit joins when a lead taps \"Go online\"; empty means none."),
    Setting("network.uplink_password", "", "Password of the uplink Wi-Fi network.", secret=True),
    Setting("network.online_minutes", 10, "Longest time \"Go online\" keeps the onboard Wi-Fi off the hotspot."),
    Setting("site.hub", False, "This kit is the site's hub: other kits' brokers bridge to its broker over the LAN."),
    Setting("site.hub_address", "", "Address of the hub kit's broker (for kits that are not the hub), e.g. 10.42.0.1."),
    Setting("site.mqtt_port", 1884, "Port of the password-protected LAN listener that kits of one site share."),
    Setting("site.mqtt_password", "", "Password every kit of the site uses on the hub's LAN listener; empty means no LAN listener.",
            secret=True),
    # The kiosk (kit/appliance/kiosk.py, fieldkit-kiosk.service): one kit page on the attached screen.
    Setting("kiosk.enabled", "auto",
            "Show a kit page full-screen on the attached screen: auto (on a Raspberry Pi with 1 GB or more and a "
            "screen connected), on, or off.", choices=("auto", "on", "off")),
    Setting("kiosk.page", "/door", "The page the kiosk shows once a PIN is entered on its touch screen "
            "(the setup slip shows first while the lead's first PIN is unchanged).",
            choices=("/door", "/merch", "/dashboard")),
]

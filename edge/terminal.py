"""What the ``run`` and ``demo`` commands share on the terminal: the terminal page's link, alert lines and a
clean stop on SIGTERM.

Apart from the command line so that the demo, which the command line runs, does not import it back.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from urllib.parse import quote

from alerts.envelope import Alert
from alerts.text import whole_seconds
from edge.i18n import t


def print_terminal_link(lang: str, host: str, port: int, token: str | None = None) -> None:
    """The terminal page's link, and a hint that says whether the link carries the token.

    Only a command that made the token itself knows it in plain (the config keeps sha256 hashes):
    without one, the hint says how to add the lobby manager's token to the link.
    """
    url = f"http://{host}:{port}/terminal" + (f"?token={quote(token, safe='')}" if token else "")
    print(t("serving", lang, url=url), flush=True)
    print(t("serving_hint" if token else "serving_hint_no_token", lang), flush=True)


def alert_printer(lang: str) -> Callable[[Alert], None]:
    def show(alert: Alert) -> None:
        p = alert.payload
        local = alert.captured_at.astimezone().strftime("%H:%M:%S")
        if p.kind == "vip_vehicle_arrival":
            driver = "" if p.driver_face is None or not p.driver_face.confirmed else t("driver_confirmed", lang)
            print(t("alert_vip_vehicle", lang, name=p.name, tier=p.tier, plate=p.plate, camera=p.camera_name,
                    time=local, seq=alert.seq) + driver, flush=True)
            return
        if p.kind == "vip_arrival":
            print(t("alert_vip", lang, name=p.name, tier=p.tier, camera=p.camera_name, time=local,
                    score=p.score, seq=alert.seq), flush=True)
        elif p.kind in ("interaction_started", "interaction_ended"):
            staff = p.staff_name or t("unidentified_staff", lang)
            customer = f"{p.vip_name}（{p.vip_tier}）" if p.vip_name else t("a_customer", lang)
            key = "alert_service_start" if p.kind == "interaction_started" else "alert_service_end"
            print(t(key, lang, staff=staff, customer=customer, duration=whole_seconds(p.duration_s or 0.0),
                    camera=p.camera_name, time=local, seq=alert.seq), flush=True)
        elif p.kind == "customer_unattended":
            customer = f"{p.name}（{p.tier}）" if p.name else t("a_customer", lang)
            print(t("alert_unattended", lang, title=alert.title, customer=customer, zone=p.zone,
                    waited=whole_seconds(p.waited_s), camera=p.camera_name, time=local, seq=alert.seq), flush=True)
        elif p.kind == "counter_unstaffed":
            print(t("alert_unstaffed", lang, zone=p.zone, gap=whole_seconds(p.unstaffed_s), camera=p.camera_name,
                    time=local, seq=alert.seq), flush=True)
    return show


def stop_on_sigterm() -> None:
    """Turn SIGTERM (docker stop, systemd) into the same clean shutdown as Ctrl+C."""
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)

"""The ``smartbranch`` command line. Messages are Simplified Chinese unless ``--lang en``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import yaml

from edge.api.auth import new_token
from edge.cli import plates as plates_cli
from edge.config import EdgeConfig, hash_token, load_config
from edge.errors import ConfigError, DataFolderError, EnrolmentError
from edge.i18n import language, t
from edge.redact import install_log_redaction, redact_text
from edge.terminal import alert_printer, print_terminal_link, stop_on_sigterm
from models.errors import ModelPackError
from models.packs import list_packs
from vault.errors import KeyMaterialError


def serve(config: EdgeConfig, lang: str, *, exit_when_done: bool, token: str | None = None,
          config_path: Path | None = None) -> int:
    from alerts.server import ServerThread
    from edge.api.app import create_app
    from edge.runtime import EdgeRuntime

    stop_on_sigterm()
    runtime = EdgeRuntime(config)
    runtime.hub.add_listener(alert_printer(lang))
    server = ServerThread(create_app(runtime, config_path=config_path), config.server.host, config.server.port)
    server.start()
    print_terminal_link(lang, config.server.host, server.port, token)
    reported: dict[str, str | None] = {}
    try:
        while True:
            time.sleep(0.5)
            for status in runtime.camera_status():
                failing = not status.health.healthy and status.health.state != "stopped"
                if failing and reported.get(status.camera_id) != status.health.error:
                    print(t("camera_unhealthy", lang, camera=status.camera_id, error=status.health.error),
                          flush=True)
                reported[status.camera_id] = status.health.error
            if exit_when_done and runtime.cameras_done:
                break
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        runtime.stop()
    print(t("stopped", lang))
    return 0


def cmd_edge_run(args: argparse.Namespace, lang: str) -> int:
    config = load_config(args.config)
    return serve(config, lang, exit_when_done=args.exit_when_done, config_path=args.config)


def cmd_enroll(args: argparse.Namespace, lang: str) -> int:
    from edge.runtime import EdgeRuntime

    config = load_config(args.config)
    runtime = EdgeRuntime(config)
    try:
        photo = args.photo.read_bytes()
    except OSError as exc:
        print(t("enrol_failed", lang, message=str(exc), code="unreadable"), file=sys.stderr)
        return 2
    try:
        covers = [c for value in args.consent_covers or () for c in value.replace("，", ",").split(",")]
        person = runtime.enroller.enrol(name=args.name, tier=args.tier, photo=photo, consent=args.consent,
                                        role=args.role, consent_covers=covers)
    except EnrolmentError as exc:
        print(t("enrol_failed", lang, message=str(exc), code=exc.code), file=sys.stderr)
        return 2
    finally:
        runtime.stop()
    print(t("enrolled", lang, name=person.name, tier=person.tier, role=person.role, id=person.id))
    return 0


def cmd_add_photo(args: argparse.Namespace, lang: str) -> int:
    from edge.runtime import EdgeRuntime

    config = load_config(args.config)
    try:
        photo = args.photo.read_bytes()
    except OSError as exc:
        print(t("enrol_failed", lang, message=str(exc), code="unreadable"), file=sys.stderr)
        return 2
    runtime = EdgeRuntime(config)
    try:
        person = runtime.enroller.add_photo(person_id=args.person, photo=photo)
        photos = runtime.store.count_person_photos(person.id)
    except EnrolmentError as exc:
        print(t("enrol_failed", lang, message=str(exc), code=exc.code), file=sys.stderr)
        return 2
    finally:
        runtime.stop()
    print(t("photo_added", lang, name=person.name, id=person.id, photos=photos))
    return 0


def cmd_models_list(args: argparse.Namespace, lang: str) -> int:
    print(t("models_header", lang))
    for pack in list_packs(args.models_dir):
        print(f"{pack.name:<20} {pack.licence:<46} {'yes' if pack.commercial_use else 'NO ':<5} {pack.status}")
        if pack.folder:
            print(f"{'':<20} {pack.folder}")
    return 0


def cmd_token_new(args: argparse.Namespace, lang: str) -> int:
    token = new_token()
    print(t("token_new", lang, token=token))
    print(t("token_yaml", lang))
    entry = {"name": args.name, "sha256": hash_token(token), "roles": args.roles, "branches": args.branches}
    print(yaml.safe_dump([entry], allow_unicode=True, sort_keys=False))
    return 0


def cmd_demo(args: argparse.Namespace, lang: str) -> int:
    from edge.cli.sync import join_console
    from edge.demo.run import run_demo

    return run_demo(lang=lang, workdir=args.workdir, port=args.port, keep_serving=args.serve,
                    console_url=args.console, code=args.code, join_console=join_console)


def _subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                 text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subcommands of group ``name`` (``eval``, …), created once and shared by every registration."""
    existing = sub.choices.get(name)
    if existing is not None:
        for action in existing._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
    return sub.add_parser(name, help=text).add_subparsers(dest=f"{name}_cmd", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartbranch", description="smartbranch 网点智能边缘服务")
    parser.add_argument("--lang", choices=["zh", "en"], default=None, help="界面语言 / language")
    parser.add_argument("-v", "--verbose", action="store_true", help="详细日志 / verbose logs")
    sub = parser.add_subparsers(dest="command", required=True)

    edge = sub.add_parser("edge", help="边缘服务 / edge service").add_subparsers(dest="edge_cmd", required=True)
    run = edge.add_parser("run", help="运行边缘服务 / run the edge service")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--exit-when-done", action="store_true",
                     help="所有文件源播完后退出 / exit when every file source has ended")
    run.set_defaults(func=cmd_edge_run)
    from edge.cli.sync import register as register_edge_sync

    register_edge_sync(edge)

    enroll = sub.add_parser("enroll", help="本地登记人员 / enrol a person locally")
    enroll.add_argument("--config", type=Path, required=True)
    enroll.add_argument("--name", required=True)
    enroll.add_argument("--tier", required=True)
    enroll.add_argument("--photo", type=Path, required=True)
    enroll.add_argument("--role", choices=["vip", "staff"], default="vip")
    enroll.add_argument("--consent", required=True, help="同意记录 / consent record (who, when, how)")
    enroll.add_argument("--consent-covers", action="append", metavar="CODE",
                        help="同意还涵盖的用途（可重复）：visit_template = 以确认到访的现场照片改进识别模板 / "
                             "a further use the consent covers (repeatable): visit_template = template improvement "
                             "from confirmed live visits")
    enroll.set_defaults(func=cmd_enroll)

    add_photo = sub.add_parser("add-photo", help="为已登记人员添加照片（最多 5 张）/ add a photo of an enrolled person")
    add_photo.add_argument("--config", type=Path, required=True)
    add_photo.add_argument("--person", required=True, help="人员编号 / person id")
    add_photo.add_argument("--photo", type=Path, required=True)
    add_photo.set_defaults(func=cmd_add_photo)

    models = sub.add_parser("models", help="模型包 / model packs").add_subparsers(dest="models_cmd", required=True)
    mlist = models.add_parser("list", help="列出模型包与许可证 / list packs and licences")
    mlist.add_argument("--models-dir", type=Path, default=None)
    mlist.set_defaults(func=cmd_models_list)

    token = sub.add_parser("token", help="访问令牌 / tokens").add_subparsers(dest="token_cmd", required=True)
    tnew = token.add_parser("new", help="生成令牌 / make a token")
    tnew.add_argument("--name", required=True)
    tnew.add_argument("--roles", nargs="+", required=True,
                      choices=["admin", "enroller", "compliance", "lobby_manager", "branch_it"])
    tnew.add_argument("--branches", nargs="+", default=["*"])
    tnew.set_defaults(func=cmd_token_new)

    demo = sub.add_parser("demo", help="演示 / run the demo")
    demo.add_argument("--workdir", type=Path, default=Path("var/demo"))
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--serve", action="store_true", help="视频结束后继续服务 / keep serving after the video")
    demo.add_argument("--console", default=None,
                      help="加入此控制台并同步人员 / join this console and receive the people by sync")
    demo.add_argument("--code", default=None, help="控制台的一次性注册码 / the console's one-time code")
    demo.set_defaults(func=cmd_demo)

    from edge.evaluation.calibrate_faces import register as register_faces_calibrate
    from edge.evaluation.eval_faces import register as register_eval_faces

    register_eval_faces(sub)
    register_faces_calibrate(sub)
    from edge.cli.face_learning import register as register_face_learning

    register_face_learning(sub)
    plates_cli.register(sub, _subcommands(sub, "eval", "评测 / evaluation"))  # after eval faces: joins its group
    from edge.cli.keys import register as register_keys
    from edge.cli.pairing import register as register_pairing

    register_keys(sub)
    register_pairing(sub)
    from edge.cli.calibrate import register as register_calibrate

    register_calibrate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lang = language(args.lang)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # no credential reaches a log, whoever logs it (ours, uvicorn, a library)
    try:
        return int(args.func(args, lang))
    except (ConfigError, KeyMaterialError) as exc:
        print(t("config_error", lang, message=redact_text(str(exc))), file=sys.stderr)
        return 2
    except DataFolderError as exc:  # Chinese first, then English (for whoever reads the log); --lang en: English
        for shown in (["zh", "en"] if lang == "zh" else ["en"]):
            print(t("data_error", shown, code=exc.code, message=exc.text(shown)), file=sys.stderr)
        return 2
    except ModelPackError as exc:
        print(t("model_error", lang, message=redact_text(str(exc))), file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())

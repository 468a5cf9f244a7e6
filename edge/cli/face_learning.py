"""``smartbranch faces shots list|undo`` and ``smartbranch faces adaptation``: what the box learnt, asked of the
running service.

The running service owns the gallery (the live shots are part of templates in its memory), so these commands
ask it over its HTTP API rather than editing the data folder behind its back: the address comes from the config
(``server.host`` and ``server.port``, or ``--url``), the token from the environment variable named by
``--token-env`` (default ``SMARTBRANCH_TOKEN``; an enroller or lobby manager token for shots, branch IT for the
adaptation).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from edge.config import load_config

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "no_token": "未设置访问令牌：请在环境变量 {env} 中提供",
        "unreachable": "无法连接边缘服务 {url}：{error}",
        "refused": "边缘服务拒绝了请求（HTTP {status}）：{body}",
        "no_shots": "此人没有来自已接待到店的现场照片",
        "shot": "{id}  {created_at}  相似度 {score:.4f}  质量 {quality:.2f}  确认人 {confirmed_by}  提醒 {alert_id}",
        "undone": "已撤销现场照片 {id}（人员 {person_id}），模板已恢复为不含此照片",
        "adaptation": "人群自适应：{state}；已学习人脸 {faces_seen} 张；版本 {version}{reason}",
        "applied": "已启用（变换 {digest}）",
        "not_applied": "未启用",
        "learning_off": "（不学习）",
        "reason": "；原因：{reason}",
    },
    "en": {
        "no_token": "no access token: put one in the environment variable {env}",
        "unreachable": "cannot reach the edge service at {url}: {error}",
        "refused": "the edge service refused the request (HTTP {status}): {body}",
        "no_shots": "this person has no live shots from confirmed visits",
        "shot": "{id}  {created_at}  score {score:.4f}  quality {quality:.2f}  confirmed by {confirmed_by}  "
                "alert {alert_id}",
        "undone": "live shot {id} (person {person_id}) undone; the template no longer includes it",
        "adaptation": "population adaptation: {state}; faces learnt {faces_seen}; version {version}{reason}",
        "applied": "applied (transform {digest})",
        "not_applied": "not applied",
        "learning_off": " (not learning)",
        "reason": "; reason: {reason}",
    },
}


def _t(key: str, lang: str, **values: object) -> str:
    return TEXT.get(lang, TEXT["zh"])[key].format(**values)


def _call(args: argparse.Namespace, lang: str, method: str, path: str) -> Any:
    """The service's JSON answer, or None after printing why there is none."""
    token = os.environ.get(args.token_env)
    if not token:
        print(_t("no_token", lang, env=args.token_env), file=sys.stderr)
        return None
    url = args.url
    if url is None:
        server = load_config(args.config).server
        url = f"http://{server.host}:{server.port}"
    try:
        response = httpx.request(method, url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)
    except httpx.HTTPError as exc:
        print(_t("unreachable", lang, url=url, error=exc), file=sys.stderr)
        return None
    if response.status_code != 200:
        print(_t("refused", lang, status=response.status_code, body=response.text[:300]), file=sys.stderr)
        return None
    return response.json()


def cmd_shots_list(args: argparse.Namespace, lang: str) -> int:
    shots = _call(args, lang, "GET", f"/api/persons/{args.person}/visit-shots")
    if shots is None:
        return 2
    if not shots:
        print(_t("no_shots", lang))
    for shot in shots:
        print(_t("shot", lang, **shot))
    return 0


def cmd_shots_undo(args: argparse.Namespace, lang: str) -> int:
    shot = _call(args, lang, "DELETE", f"/api/visit-shots/{args.id}")
    if shot is None:
        return 2
    print(_t("undone", lang, id=shot["id"], person_id=shot["person_id"]))
    return 0


def cmd_adaptation(args: argparse.Namespace, lang: str) -> int:
    health = _call(args, lang, "GET", "/healthz")
    if health is None:
        return 2
    a = health.get("adaptation")
    if not isinstance(a, dict):
        print(_t("refused", lang, status=200, body="no adaptation in /healthz"), file=sys.stderr)
        return 2
    state = _t("applied", lang, digest=a["digest"]) if a["applied"] else _t("not_applied", lang)
    if not a["learning"]:
        state += _t("learning_off", lang)
    reason = _t("reason", lang, reason=a["reason"]) if a.get("reason") else ""
    print(_t("adaptation", lang, state=state, faces_seen=a["faces_seen"], version=a["version"], reason=reason))
    return 0


def _faces_group(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    existing = sub.choices.get("faces")
    if existing is not None:
        for action in existing._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
    group: argparse._SubParsersAction = sub.add_parser(  # type: ignore[type-arg]
        "faces", help="人脸识别工具 / face tools").add_subparsers(dest="faces_cmd", required=True)
    return group


def _service_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="边缘配置 / the edge config (server address)")
    p.add_argument("--url", default=None, help="边缘服务地址 / the service's address (default from the config)")
    p.add_argument("--token-env", default="SMARTBRANCH_TOKEN", help="存放令牌的环境变量 / env variable with the token")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    faces = _faces_group(sub)
    shots = faces.add_parser("shots", help="已接待到店的现场照片 / live shots of confirmed visits").add_subparsers(
        dest="shots_cmd", required=True)
    lst = shots.add_parser("list", help="列出某人的现场照片 / list a person's live shots")
    _service_arguments(lst)
    lst.add_argument("--person", required=True, help="人员编号 / person id")
    lst.set_defaults(func=cmd_shots_list)
    undo = shots.add_parser("undo", help="撤销一张现场照片 / undo one live shot")
    _service_arguments(undo)
    undo.add_argument("--id", required=True, help="现场照片编号 / shot id")
    undo.set_defaults(func=cmd_shots_undo)
    adaptation = faces.add_parser("adaptation", help="人群自适应状态 / population adaptation state")
    _service_arguments(adaptation)
    adaptation.set_defaults(func=cmd_adaptation)

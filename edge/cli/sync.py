"""``smartbranch edge register``: join this box to a branch at the central console with a one-time code.

The code is redeemed first (``POST /api/sync/register`` with the box's face model id); only when the console
accepts it is anything written: the token, encrypted with the data key, to ``<data_dir>/console.token`` (0600),
then ``sync.console_url`` into the YAML. The YAML is edited in place (comments and layout kept), checked to load,
and replaced atomically; the token never goes into it. A bad code or an unreachable console writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.config import EdgeConfig, load_config
from edge.config_edit import set_values
from edge.errors import ConfigError
from edge.store.datadir import open_data_folder
from edge.sync.client import ConsoleClient, ConsoleRefused, ConsoleUnauthorized, ConsoleUnavailable
from edge.sync.credentials import Credentials, token_path, write_credentials
from edge.sync.service import software_version
from vision.engines.registry import build_engine

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "bad_url": "控制台地址必须以 http:// 或 https:// 开头：{url}",
        "bad_code": "注册码无效、已使用或已过期（{detail}）。请在控制台重新生成注册码。未写入任何内容。",
        "unreachable": "无法连接控制台 {url}：{detail}。未写入任何内容。",
        "refused": "控制台拒绝了注册：{detail}。未写入任何内容。",
        "config_failed": "已在控制台注册，但配置文件无法写入：{detail}。令牌已删除；请生成新的注册码后重试。",
        "joined": "已加入网点 {name}（{code}），边缘编号 {edge_id}。控制台：{url}\n令牌已加密保存到 {token}；"
                  "配置已写入 {config}。重启边缘服务后开始同步。",
    },
    "en": {
        "bad_url": "the console URL must start with http:// or https://: {url}",
        "bad_code": "the code is unknown, used or expired ({detail}); make a new one at the console. Nothing was "
                    "written.",
        "unreachable": "the console {url} was not reached: {detail}. Nothing was written.",
        "refused": "the console refused the registration: {detail}. Nothing was written.",
        "config_failed": "registered at the console, but the config could not be written: {detail}. The token was "
                         "removed; make a new code and try again.",
        "joined": "joined branch {name} ({code}) as edge {edge_id}. Console: {url}\nToken stored encrypted in "
                  "{token}; config written to {config}. Restart the edge service to start syncing.",
    },
}


def say(key: str, lang: str, **values: object) -> str:
    return MESSAGES[lang if lang in MESSAGES else "zh"][key].format(**values)


def set_console_url(path: Path, url: str) -> EdgeConfig:
    """Write ``sync.console_url`` into the YAML at ``path`` (comments kept where possible), atomically, only
    when the result loads; ConfigError otherwise (nothing written)."""
    return set_values(path, ("sync",), {"console_url": url}).config


def cmd_edge_register(args: argparse.Namespace, lang: str) -> int:
    config = load_config(args.config)
    url = str(args.console).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        print(say("bad_url", lang, url=url), file=sys.stderr)
        return 2
    model_id = build_engine(config.face.engine).model_id
    client = ConsoleClient(url, timeout_s=args.timeout)
    try:
        joined = client.register(code=str(args.code).strip().upper(), model_id=model_id, software=software_version())
    except ConsoleUnauthorized as exc:
        print(say("bad_code", lang, detail=exc.code or exc), file=sys.stderr)
        return 2
    except ConsoleUnavailable as exc:
        print(say("unreachable", lang, url=url, detail=exc), file=sys.stderr)
        return 2
    except ConsoleRefused as exc:
        print(say("refused", lang, detail=exc), file=sys.stderr)
        return 2
    data_dir = config.paths.data_dir
    folder = open_data_folder(data_dir, branch_id=config.branch.id, clips_dir=config.clips.resolve_dir(data_dir))
    try:
        path = write_credentials(data_dir, folder.key.fernet, Credentials(
            token=joined.token, edge_id=joined.edge_id, branch_code=joined.branch_code,
            branch_name=joined.branch_name, branch_timezone=joined.branch_timezone))
    finally:
        folder.close()
    try:
        set_console_url(args.config, url)
    except ConfigError as exc:
        token_path(data_dir).unlink(missing_ok=True)
        print(say("config_failed", lang, detail=exc), file=sys.stderr)
        return 2
    print(say("joined", lang, name=joined.branch_name, code=joined.branch_code, edge_id=joined.edge_id, url=url,
              token=path, config=args.config))
    return 0


def join_console(config_path: Path, console_url: str, code: str, lang: str) -> EdgeConfig | None:
    """Register the box at ``config_path`` with ``code`` exactly as ``smartbranch edge register`` does (token
    encrypted in the data folder, the URL into the YAML); the config with the sync on, or None when refused.
    The demo (a lower floor) is handed this step by ``cmd_demo``."""
    args = argparse.Namespace(config=config_path, console=console_url, code=code, timeout=15.0)
    return load_config(config_path) if cmd_edge_register(args, lang) == 0 else None


def register(edge: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``register`` to the ``edge`` command group."""
    reg = edge.add_parser("register", help="用注册码加入控制台的网点 / join a branch at the console with a code")
    reg.add_argument("--config", type=Path, required=True)
    reg.add_argument("--console", required=True, help="控制台地址 / console URL, e.g. https://console:8090")
    reg.add_argument("--code", required=True, help="一次性注册码 / one-time code XXXX-XXXX")
    reg.add_argument("--timeout", type=float, default=15.0, help="请求超时（秒）/ request timeout (s)")
    reg.set_defaults(func=cmd_edge_register)

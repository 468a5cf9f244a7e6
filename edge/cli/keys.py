"""``smartbranch keys rotate``: the command over :mod:`edge.store.rotation`."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.config import load_config
from edge.i18n import t
from edge.store import datadir_text as text
from edge.store.rotation import rotate_key
from vault.keys import DataKey, env_key


def cmd_keys_rotate(args: argparse.Namespace, lang: str) -> int:
    config = load_config(args.config)
    data_dir = config.paths.data_dir
    if args.new_key_file is not None:
        new = DataKey.from_text(args.new_key_file.read_bytes(), str(args.new_key_file))
    elif env_key() is not None:
        raise text.new_key_needed()
    else:
        new = DataKey.generate()
    report = rotate_key(data_dir, branch_id=config.branch.id, clips_dir=config.clips.resolve_dir(data_dir), new=new)
    print(t("keys_rotated", lang, key_id=report.key_id, old_id=report.previous_key_id, values=report.values,
            maps=report.gallery_maps, clips=report.clips))
    if report.key_file is not None:
        print(t("keys_rotated_file", lang, path=report.key_file))
    else:
        print(t("keys_rotated_env", lang, path=args.new_key_file))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="数据密钥 / the data key").add_subparsers(dest="keys_cmd", required=True)
    rotate = keys.add_parser("rotate", help="更换数据密钥（先停止服务）/ rotate the data key (stop the service first)")
    rotate.add_argument("--config", type=Path, required=True)
    rotate.add_argument("--new-key-file", type=Path, default=None,
                        help="新密钥文件；密钥在环境变量中时必填 / file with the new key; required when the key is in "
                             "$SMARTBRANCH_DATA_KEY (default: a new key, written to data.key)")
    rotate.set_defaults(func=cmd_keys_rotate)


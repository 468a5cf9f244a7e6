"""``smartbranch pair`` and ``smartbranch pairings list|revoke``: tablets paired by a one-time code (see
:mod:`edge.api.pairing`). They write to the data folder directly; a running service sees the change at once
(every request reads the pairings from the store)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.api.pairing import CODE_TTL_S, Pairings
from edge.config import EdgeConfig, load_config
from edge.i18n import t
from edge.store.datadir import DataFolder, open_data_folder


def _folder(config: EdgeConfig) -> DataFolder:
    return open_data_folder(config.paths.data_dir, branch_id=config.branch.id,
                            clips_dir=config.clips.resolve_dir(config.paths.data_dir))


def cmd_pair(args: argparse.Namespace, lang: str) -> int:
    config = load_config(args.config)
    folder = _folder(config)
    try:
        issued = Pairings(folder.store).issue(args.name)
    finally:
        folder.close()
    print(t("pair_code", lang, name=issued.name, code=issued.code, minutes=CODE_TTL_S // 60))
    print(t("pair_hint", lang, host=config.server.host, port=config.server.port))
    return 0


def cmd_pairings_list(args: argparse.Namespace, lang: str) -> int:
    folder = _folder(load_config(args.config))
    try:
        pairings = Pairings(folder.store).list()
    finally:
        folder.close()
    if not pairings:
        print(t("pairings_none", lang))
    for p in pairings:
        when = (p.revoked_at or p.paired_at or p.created_at).astimezone().strftime("%Y-%m-%d %H:%M")
        print(f"{p.id}  {p.state:<8} {when}  {p.name}")
    return 0


def cmd_pairings_revoke(args: argparse.Namespace, lang: str) -> int:
    folder = _folder(load_config(args.config))
    try:
        revoked = Pairings(folder.store).revoke(args.id)
    finally:
        folder.close()
    if revoked is None:
        print(t("pairing_not_found", lang, id=args.id))
        return 2
    print(t("pairing_revoked", lang, name=revoked.name, id=revoked.id))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pair = sub.add_parser("pair", help="生成平板配对码 / make a tablet pairing code")
    pair.add_argument("--config", type=Path, required=True)
    pair.add_argument("--name", required=True, help="平板名称，例如 大堂平板1 / which tablet")
    pair.set_defaults(func=cmd_pair)
    pairings = sub.add_parser("pairings", help="已配对的平板 / paired tablets").add_subparsers(
        dest="pairings_cmd", required=True)
    lst = pairings.add_parser("list", help="列出配对 / list pairings")
    lst.add_argument("--config", type=Path, required=True)
    lst.set_defaults(func=cmd_pairings_list)
    revoke = pairings.add_parser("revoke", help="撤销配对 / revoke a pairing")
    revoke.add_argument("--config", type=Path, required=True)
    revoke.add_argument("id", help="配对编号 / pairing id")
    revoke.set_defaults(func=cmd_pairings_revoke)

"""``smartbranch console edge code|revoke``: a one-time registration code for a branch's new edge box, and the
revocation of a box's credential, at the console's machine (audited as ``cli:<login name>``).

The code is printed once (only its sha256 is kept) with the command to run on the box.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from console.cli.common import add_config_arg, open_database, operator_name
from console.errors import ConsoleError
from console.security import Principal
from console.sync.codes import create_code, revoke
from console.tables import Branch, Edge


def _operator() -> Principal:
    """The person at the console's machine, with every branch in scope (they hold the database already)."""
    return Principal(user_id=0, username=operator_name(), role="admin", via="cli", branch_ids=None)


def cmd_code(args: argparse.Namespace) -> int:
    db = open_database(args)
    if db is None:
        return 2
    try:
        with db.transaction() as session:
            branch = session.scalar(select(Branch).where(Branch.code == args.branch.strip().upper()))
            if branch is None:
                raise ConsoleError("not_found", f"没有网点 {args.branch} / no branch {args.branch}", 404)
            row, code = create_code(session, _operator(), branch, args.name)
            expires, branch_code = row.expires_at.isoformat(timespec="minutes"), branch.code
    except ConsoleError as exc:
        print(f"未生成 / refused: {exc.message}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"注册码 / registration code: {code}\n"
          f"网点 / branch {branch_code}，设备名 / edge name {row.name}，"
          f"有效至 / good until {expires} (UTC)，仅可使用一次 / once\n"
          f"在边缘设备上运行 / on the box: smartbranch edge register --config smartbranch.yaml "
          f"--console <console URL> --code {code}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    db = open_database(args)
    if db is None:
        return 2
    try:
        with db.transaction() as session:
            edge = revoke(session, _operator(), args.id)
            name = edge.name
    except ConsoleError as exc:
        print(f"未吊销 / not revoked: {exc.message}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"已吊销边缘设备 / edge revoked: {args.id} {name}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    db = open_database(args)
    if db is None:
        return 2
    try:
        with db.transaction() as session:
            query = select(Edge, Branch.code).join(Branch, Branch.id == Edge.branch_id).order_by(Branch.code, Edge.id)
            if args.branch:
                query = query.where(Branch.code == args.branch.strip().upper())
            rows = [(e.id, code, e.name, e.last_seen_at, e.gallery_version, e.revoked_at)
                    for e, code in session.execute(query)]
    finally:
        db.close()
    print("编号/id\t网点/branch\t名称/name\t最近联系/last seen\t图库版本/version\t状态/state")
    for edge_id, code, name, seen, version, revoked in rows:
        state = f"已吊销/revoked {revoked.isoformat(timespec='minutes')}" if revoked else "有效/active"
        seen_text = seen.isoformat(timespec="seconds") if seen else "-"
        print(f"{edge_id}\t{code}\t{name}\t{seen_text}\t{version if version is not None else '-'}\t{state}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = sub.add_parser("edge", help="边缘设备 / edge boxes")
    cmds = edge.add_subparsers(dest="edge_cmd", required=True)
    code = cmds.add_parser("code", help="生成一次性注册码 / make a one-time registration code")
    add_config_arg(code)
    code.add_argument("--branch", required=True, help="网点代码 / branch code")
    code.add_argument("--name", required=True, help="设备名 / the box's name at its branch")
    code.set_defaults(func=cmd_code)
    rev = cmds.add_parser("revoke", help="吊销边缘设备凭据 / revoke an edge's credential")
    add_config_arg(rev)
    rev.add_argument("--id", type=int, required=True, help="边缘设备编号 / edge id (smartbranch console edge list)")
    rev.set_defaults(func=cmd_revoke)
    lst = cmds.add_parser("list", help="列出边缘设备 / list edge boxes")
    add_config_arg(lst)
    lst.add_argument("--branch", default="", help="只列此网点 / only this branch")
    lst.set_defaults(func=cmd_list)

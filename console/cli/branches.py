"""``smartbranch console branch add|list``: set up branches before anyone can sign in to the web console.

The CLI acts as the operator at the machine (audited as ``cli:<login name>``) and needs a migrated database;
it never opens the face engine or the blob store.
"""

from __future__ import annotations

import argparse
import sys

from console.branches import create_branch, list_branches
from console.cli.common import add_config_arg, open_database, operator_name
from console.errors import ConsoleError


def cmd_branch_add(args: argparse.Namespace) -> int:
    from console import audit

    db = open_database(args)
    if db is None:
        return 2
    try:
        with db.transaction() as session:
            branch = create_branch(session, args.code, args.name, args.region, args.timezone)
            audit.record(session, operator_name(), "branch_create", object_type="branch", object_id=branch.code,
                         branch_code=branch.code, detail={"name": branch.name, "region": branch.region,
                                                          "timezone": branch.timezone})
            code, name = branch.code, branch.name
    except ConsoleError as exc:
        print(f"未添加 / not added: {exc.message}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"已添加网点 / branch added: {code} {name}")
    return 0


def cmd_branch_list(args: argparse.Namespace) -> int:
    db = open_database(args)
    if db is None:
        return 2
    try:
        with db.transaction() as session:
            rows = list_branches(session, None)
    finally:
        db.close()
    if not rows:
        print("还没有网点 / no branches yet: smartbranch console branch add --code … --name … --region …")
        return 0
    print("代码/code\t名称/name\t区域/region\t时区/timezone\t边缘设备/edges")
    for row in rows:
        edges = row["edges"]
        assert isinstance(edges, list)
        print(f"{row['code']}\t{row['name']}\t{row['region']}\t{row['timezone']}\t{len(edges)}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    branch = sub.add_parser("branch", help="网点 / branches")
    cmds = branch.add_subparsers(dest="branch_cmd", required=True)
    add = cmds.add_parser("add", help="添加网点 / add a branch")
    add_config_arg(add)
    add.add_argument("--code", required=True, help="网点代码 / code: 2-32 of A-Z 0-9 -")
    add.add_argument("--name", required=True, help="网点名称 / name")
    add.add_argument("--region", required=True, help="区域 / region")
    add.add_argument("--timezone", default="Asia/Shanghai", help="IANA 时区 / timezone (default Asia/Shanghai)")
    add.set_defaults(func=cmd_branch_add)
    lst = cmds.add_parser("list", help="列出网点 / list branches")
    add_config_arg(lst)
    lst.set_defaults(func=cmd_branch_list)

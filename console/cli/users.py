"""``smartbranch console user add|token``: create a user, or an API token for a script (Chinese first).

A password is never an argument: a command line is kept in the shell's history and shown by ``ps`` to every
user of the machine. ``user add`` asks for it twice (getpass, not echoed) or reads one line from standard input
with ``--password-stdin`` (for provisioning scripts). A new token is printed once and stored only as a hash.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from console.audit import record
from console.cli.common import add_config_arg, config_of, operator_name, schema_problem
from console.context import ConsoleContext
from console.errors import ConsoleError
from console.security import ROLES
from console.users import create_token, create_user, user_by_name


def _open(args: argparse.Namespace) -> ConsoleContext | None:
    ctx = ConsoleContext.open(config_of(args))
    problem = schema_problem(ctx.db.engine)
    if problem:
        print(problem, file=sys.stderr)
        ctx.close()
        return None
    return ctx


def _refused(exc: ConsoleError) -> int:
    problems = exc.extra.get("problems") or []
    lines = [f"  {p['field']}: {p['message']}" for p in problems] or [f"  {exc.message}"]
    print("未能完成 / refused (" + exc.code + "):\n" + "\n".join(lines), file=sys.stderr)
    return 1


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码 / password: ")
    if getpass.getpass("再输一次 / again: ") != first:
        print("两次输入的密码不一致 / the two passwords differ", file=sys.stderr)
        return None
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _read_password(args)
    if password is None:
        return 1
    ctx = _open(args)
    if ctx is None:
        return 2
    kind = "region" if args.region else "branches" if args.branches else "all"
    codes = [c for c in (args.branches or "").split(",") if c.strip()]
    try:
        with ctx.db.transaction() as session:
            user = create_user(session, username=args.username, password=password, role=args.role, scope_kind=kind,
                               scope_region=args.region, branches=codes, display_name=args.display_name or "")
            record(session, operator_name(), "user_create", object_type="user", object_id=user.username,
                   detail={"role": user.role, "scope_kind": kind, "scope_region": user.scope_region,
                           "branches": sorted(b.code for b in user.branches)})
            scope = {"all": "全部网点 / all branches", "region": f"区域 / region {user.scope_region}",
                     "branches": "网点 / branches " + ",".join(sorted(b.code for b in user.branches))}[kind]
            print(f"已创建用户 / user created: {user.username} ({user.role}; {scope})")
    except ConsoleError as exc:
        return _refused(exc)
    finally:
        ctx.close()
    return 0


def cmd_user_token(args: argparse.Namespace) -> int:
    ctx = _open(args)
    if ctx is None:
        return 2
    try:
        with ctx.db.transaction() as session:
            user = user_by_name(session, args.username)
            if user is None:
                print(f"没有用户 {args.username} / no user {args.username}", file=sys.stderr)
                return 1
            token, secret = create_token(session, user, args.name)
            record(session, operator_name(), "token_create", object_type="token", object_id=str(token.id),
                   detail={"user": user.username, "name": token.name})
    except ConsoleError as exc:
        return _refused(exc)
    finally:
        ctx.close()
    print(f"新的 API 令牌（只显示这一次，请妥善保存）/ new API token for {user.username} "
          f"(shown once; keep it safe):", file=sys.stderr)
    print(secret)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="控制台用户与 API 令牌 / console users and API tokens")
    user_sub = user.add_subparsers(dest="user_cmd", required=True)
    add = user_sub.add_parser("add", help="创建用户 / create a user (the password is asked, never an argument)")
    add_config_arg(add)
    add.add_argument("--username", required=True, help="3-64 位 a-z 0-9 . _ - / user name")
    add.add_argument("--role", required=True, choices=ROLES, help="角色 / role")
    add.add_argument("--display-name", default=None, help="显示名 / display name")
    scope = add.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all", action="store_true", help="全部网点 / every branch")
    scope.add_argument("--region", default=None, help="一个区域的网点 / the branches of one region")
    scope.add_argument("--branches", default=None, help="网点代码，逗号分隔 / branch codes, comma separated")
    add.add_argument("--password-stdin", action="store_true",
                     help="从标准输入读一行密码 / read the password from one line of standard input")
    add.set_defaults(func=cmd_user_add)
    token = user_sub.add_parser("token", help="为脚本创建 API 令牌（只显示一次）/ a new API token, shown once")
    add_config_arg(token)
    token.add_argument("--username", required=True)
    token.add_argument("--name", required=True, help="令牌用途 / what the token is for")
    token.set_defaults(func=cmd_user_token)

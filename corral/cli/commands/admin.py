"""corral admin projects create|list · corral admin keys create|list|revoke · corral admin whoami

A new key is printed once, alone on stdout (so `KEY=$(corral admin keys create ...)` works),
with a warning on stderr; no other command ever prints a key.
"""

from __future__ import annotations

import argparse

from corral.cli.common import open_client, print_json, print_table, warn
from corral.client.admin import ROLES, ApiKeyDict, CallerDict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("admin", help="projects, API keys and who you are")
    areas = parser.add_subparsers(dest="area", required=True, metavar="AREA")

    projects = areas.add_parser("projects", help="create and list projects")
    project_actions = projects.add_subparsers(dest="action", required=True, metavar="ACTION")
    create_project = project_actions.add_parser(
        "create", help="create a project (instance admins only)")
    create_project.add_argument("name")
    create_project.add_argument("--description", default="")
    create_project.set_defaults(handler=create_project_command)
    list_projects = project_actions.add_parser("list", help="list the projects you can see")
    list_projects.add_argument("--json", action="store_true", help="print a JSON array")
    list_projects.set_defaults(handler=list_projects_command)

    keys = areas.add_parser("keys", help="create, list and revoke API keys")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create_key = key_actions.add_parser(
        "create", help="create an API key; it is printed once on stdout",
        description="Prints the new key once, alone on stdout; store it then (the catalog "
                    "keeps only its hash). Project admins create keys of their project, "
                    "instance admins of any project and instance-wide keys.")
    # dest differs from the global --project, which names the project the call acts in.
    create_key.add_argument("--project", dest="key_project", metavar="NAME",
                            help="the project the key belongs to")
    create_key.add_argument("--role", required=True, choices=list(ROLES))
    create_key.add_argument("--description", default="")
    create_key.add_argument("--instance-wide", action="store_true",
                            help="a key for every project (instead of --project)")
    create_key.set_defaults(handler=create_key_command, parser=create_key)
    list_keys = key_actions.add_parser("list", help="list API keys (never the keys themselves)")
    list_keys.add_argument("--project", dest="key_project", metavar="NAME",
                           help="only this project's keys")
    list_keys.add_argument("--revoked", action="store_true", help="include revoked keys")
    list_keys.add_argument("--json", action="store_true", help="print a JSON array")
    list_keys.set_defaults(handler=list_keys_command)
    revoke_key = key_actions.add_parser(
        "revoke", help="revoke an API key by its id",
        description="The catalog refuses the key at once; the upload and preprocess services "
                    "within CORRAL_AUTH_CACHE_SECONDS (10 by default).")
    revoke_key.add_argument("key_id", metavar="KEY_ID")
    revoke_key.set_defaults(handler=revoke_key_command)

    whoami = areas.add_parser("whoami", help="show the key this command uses: id, role, "
                                             "project")
    whoami.add_argument("--json", action="store_true", help="print a JSON object")
    whoami.set_defaults(handler=whoami_command)


def create_project_command(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        project = client.create_project(args.name, args.description)
    print(f"created project {project['name']}")
    return 0


def list_projects_command(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        projects = list(client.list_projects())
    if args.json:
        print_json(projects)
        return 0
    print_table(["NAME", "CREATED", "DESCRIPTION"],
                [[p["name"], p["create_time"] or "", p["description"]] for p in projects])
    return 0


def _scope(key: ApiKeyDict | CallerDict) -> str:
    return "all projects" if key["project"] is None else f"project {key['project']}"


def create_key_command(args: argparse.Namespace) -> int:
    if bool(args.key_project) == args.instance_wide:
        args.parser.error("give either --project NAME or --instance-wide")
    with open_client(args) as client:
        record, key = client.create_api_key(args.key_project, args.role, args.description,
                                            instance_wide=args.instance_wide)
    warn(f"created key {record['key_id']} ({record['role']}, {_scope(record)}); this is the "
         "only time it is shown: store it now")
    print(key)
    return 0


def list_keys_command(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        keys = list(client.list_api_keys(args.key_project, include_revoked=args.revoked))
    if args.json:
        print_json(keys)
        return 0
    print_table(["KEY ID", "PROJECT", "ROLE", "CREATED", "REVOKED", "DESCRIPTION"],
                [[k["key_id"], k["project"] or "(all)", k["role"], k["create_time"] or "",
                  k["revoke_time"] or "", k["description"]] for k in keys])
    return 0


def revoke_key_command(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        record = client.revoke_api_key(args.key_id)
    print(f"revoked key {record['key_id']} ({record['role']}, {_scope(record)})")
    return 0


def whoami_command(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        caller = client.whoami()
    if args.json:
        print_json(caller)
        return 0
    who = "the corral services" if caller["service"] else f"key {caller['key_id']}"
    wide = ", instance-wide" if caller["instance_wide"] else ""
    print(f"{who}: {caller['role']} in {_scope(caller)}{wide}")
    return 0

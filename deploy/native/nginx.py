"""deploy/nginx/nginx.conf.template rendered and run with Debian's nginx, as the compose `lb`.

The official nginx image renders the template with `envsubst` over the variables that
NGINX_ENVSUBST_FILTER lets through; `render` does the same, so both stacks run one file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from deploy.native.ports import is_free

TEMPLATE = Path(__file__).resolve().parents[1] / "nginx" / "nginx.conf.template"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def render(template: str, values: Mapping[str, str]) -> str:
    """envsubst with a variable list: `${NAME}` and `$NAME` of the given names are replaced,
    every other `$...` (nginx's own variables) is left as it is."""

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return str(values[name]) if name in values else match.group(0)

    return _PLACEHOLDER.sub(substitute, template)


def placeholders(template: str) -> set[str]:
    """The `${NAME}` names a template expects (nginx's variables are written `$name`)."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)}


def native_values(lb_environment: Mapping[str, str], port: int, api_ports: Iterable[int]) -> dict:
    """The compose lb's template values with what differs on one host: the listen port, no DNS
    resolver, and one loopback `server` line per replica carrying compose's parameters."""
    values = {name: str(value) for name, value in lb_environment.items()
              if name in placeholders(TEMPLATE.read_text())}
    compose_server = values["CHAINRULE_UPSTREAMS"].strip().rstrip(";").split()
    # "server api:8000 resolve max_fails=1 ..." -> the parameters after address and `resolve`
    parameters = [word for word in compose_server[2:] if word != "resolve"]
    values["CHAINRULE_UPSTREAMS"] = "\n        ".join(
        " ".join(["server", f"127.0.0.1:{p}", *parameters]) + ";" for p in api_ports)
    values["CHAINRULE_RESOLVER"] = ""
    values["CHAINRULE_LISTEN"] = f"127.0.0.1:{port}"
    return values


def nginx_argv(config: Path, prefix: Path) -> list[str]:
    """Debian's nginx in the foreground with everything under `prefix`, no root needed.

    Started by root, nginx would run its workers as `nobody`, who may not reach `prefix` (a
    private temporary directory); like every other process of the native stack they run as
    the user who started it instead.
    """
    executable = shutil.which("nginx") or "/usr/sbin/nginx"
    main_directives = "daemon off;"
    if os.geteuid() == 0:
        main_directives += " user root;"
    return [executable, "-c", str(config), "-p", f"{prefix}/", "-e", "stderr",
            "-g", main_directives]


def write_config(prefix: Path, values: Mapping[str, str]) -> Path:
    """Render the template into `prefix`, where nginx keeps its pid and temporary files."""
    prefix.mkdir(parents=True, exist_ok=True)
    config = prefix / "nginx.conf"
    config.write_text(render(TEMPLATE.read_text(), values))
    return config


def wait_listening(process: subprocess.Popen, port: int, seconds: float = 10.0) -> None:
    """Return once something listens on `port`, or raise if `process` died or time ran out."""
    give_up = time.monotonic() + seconds
    while is_free(port):
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with status {process.returncode}")
        if time.monotonic() > give_up:
            raise RuntimeError(f"nginx did not listen on port {port}")
        time.sleep(0.02)

"""`reasoner serve` (the rule set as a CDS Hooks 2.0 service, docs/service.md) and
`reasoner overrides` (which rules clinicians override, from the service's feedback
database). Starlette, uvicorn and httpx are imported when `serve` runs, never before."""
from __future__ import annotations

import sys

import click

from reasoner.cli.common import fail, load_rules, parse_settings, refuse, rules_option, settings_option
from reasoner.language.errors import ReasonerError


@click.command()
@rules_option
@settings_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("--feedback-db", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="The sqlite database of cards issued and feedback received (created if missing; "
                   "default: in memory, lost when the service stops).")
@click.option("--max-body-bytes", type=click.IntRange(1), default=5_000_000, show_default=True,
              help="Largest request body accepted (413 beyond).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Allow a browser page from ORIGIN to call the service (a CDS Hooks sandbox), e.g. "
                   "https://sandbox.cds-hooks.org; repeatable.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info"]), default="info",
              show_default=True, help="uvicorn's log level (info: one line per request).")
def serve(rules_path: str | None, overrides: tuple[str, ...], host: str, port: int, feedback_db: str | None,
          max_body_bytes: int, cors_origins: tuple[str, ...], log_level: str) -> None:
    """Serve the rule set as CDS Hooks 2.0 services that an EHR calls, with proofs.

    Three services: patient-view, order-select and order-sign. GET /cds-services lists them with their prefetch templates. Research use only: not a
    medical device; no authentication of the calling EHR (docs/service.md)."""
    import importlib.util
    missing = [name for name in ("starlette", "uvicorn", "httpx") if importlib.util.find_spec(name) is None]
    if missing:  # `pip install .` leaves the web stack out: say how to get it, not a traceback
        refuse(f"reasoner serve needs {', '.join(missing)}: pip install 'guideline-reasoner[service]' "
               "(from a checkout: pip install '.[service]')")
    from reasoner.io.fhir_map import load_fhir_mapping
    from reasoner.service.app import CdsService, run
    from reasoner.service.outcome import ServiceError
    rules = load_rules(rules_path)
    try:
        mapping = load_fhir_mapping(rules)
        service = CdsService(rules, mapping, settings=parse_settings(overrides), feedback_db=feedback_db,
                             max_body=max_body_bytes, cors_origins=cors_origins)
    except ReasonerError as exc:
        fail(exc)
    except ServiceError as exc:
        refuse(exc.issues[0].message, exc.issues[0].code)
    why = _cannot_listen(host, port)
    if why:  # said as every other error is, not as uvicorn's own line and its exit status 3
        service.close()
        refuse(f"cannot listen on {host}:{port}: {why} (--host, --port)")
    click.echo(f"reasoner serve: {len(service.services)} CDS services of {rules.path} on http://{host}:{port}"
               f"/cds-services (feedback: {feedback_db or 'in memory'})", err=True)
    run(service, host, port, log_level)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why `host`:`port` cannot be listened on (an address in use, a host that does not
    resolve), or None: a bind tried and let go just before uvicorn binds it."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return f"the host does not resolve ({exc})"
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return None


@click.command()
@click.option("--feedback-db", type=click.Path(dir_okay=False), required=True, metavar="PATH",
              help="The database `reasoner serve --feedback-db PATH` wrote.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True,
              help="Output format.")
def overrides(feedback_db: str, fmt: str) -> None:
    """Which rules clinicians override most: per rule id, the cards shown, accepted,
    overridden, the override rate and the top override reasons."""
    from reasoner.service.feedback import open_existing, render
    from reasoner.service.outcome import ServiceError
    try:
        store = open_existing(feedback_db)
        rows = store.overrides()
        store.close()
    except ServiceError as exc:
        refuse(exc.issues[0].message, exc.issues[0].code)
    sys.stdout.write(render(rows, fmt))
